// The wire contract, checked in the browser with the same JSON Schemas the service uses
// (served at /schemas/), so a message that breaks it is counted and dropped, never half-drawn.

import { Validator } from "./vendor/json-schema/index.js";

const FILES = {
  readings: "readings.schema.json",
  frame: "frame.schema.json",
  status: "status.schema.json",
  view: "view.schema.json",
  reply: "control-reply.schema.json",
  error: "error.schema.json",
  signaling: "signaling.schema.json",
  alarms: "alarms.schema.json",
  spectrum: "spectrum.schema.json",
};

export class Schemas {
  constructor() {
    this.validators = {};
    this.missing = [];
  }

  /** Fetch and compile every schema; one that cannot be loaded is listed in `missing`. */
  async load(base = "/schemas/") {
    await Promise.all(Object.entries(FILES).map(async ([name, file]) => {
      try {
        const res = await fetch(base + file, { cache: "no-cache" });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        this.validators[name] = new Validator(await res.json(), "2020-12", true);
      } catch (err) {
        this.missing.push(`${file} (${err.message})`);
      }
    }));
    return this;
  }

  /** null when `msg` is valid under schema `name` (or that schema is unavailable), else why not. */
  check(name, msg) {
    const v = this.validators[name];
    if (!v) return null;
    const result = v.validate(msg);
    if (result.valid) return null;
    // The deepest error is the most specific one (the field), the first is the summary.
    const errs = result.errors;
    const e = errs[errs.length - 1] ?? errs[0];
    return e ? `${e.instanceLocation}: ${e.error}` : "invalid";
  }
}
