// What this page shows: the service that served it, or one of the links its hello lists
// ([[dashboard.links]]: another sensorlink service, or a Janus room a service publishes to), and
// which path the data takes to get here (direct, or via a Janus room).

import { el } from "./dom.js";

/** The signaling websocket of the service whose dashboard lives at `url`. Resolved relative to
 * it, so a service behind a reverse proxy at https://host/press-2/ is reached at /press-2/ws. */
export function serviceWsUrl(url) {
  const u = new URL("ws", url);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.search = "";
  u.hash = "";
  return u.href;
}

/** {kind, link, room, url, text} for the hook, the top bar and the status panel. */
export function describePath(link, home = location.host) {
  if (!link) return { kind: "direct", link: null, room: null, url: home, text: "direct · this service" };
  if (link.kind === "janus") {
    return { kind: "janus", link: link.name, room: link.room, url: link.url,
             text: `via Janus room ${link.room} · ${link.name}` };
  }
  return { kind: "direct", link: link.name, room: null, url: link.url, text: `direct · ${link.name}` };
}

export class LinkSelector {
  constructor(host, { onSelect }) {
    this.links = [];
    this.select = el("select", { id: "link-select", "data-testid": "link-select",
                                 title: "Switch to another machine's service or a Janus room" });
    this.path = el("span", { class: "chip path direct", "data-testid": "path",
                             title: "How the data reaches this page" }, "direct · this service");
    this.picker = el("label", { class: "link-picker hidden" }, "Show ", this.select);
    host.prepend(this.picker, this.path);
    this.select.addEventListener("change", () => onSelect(this.select.value || null));
  }

  /** The home service's links (from its hello); the selector stays hidden when there are none. */
  setLinks(links) {
    this.links = links;
    const chosen = this.select.value;
    this.select.replaceChildren(el("option", { value: "" }, "This service"),
      ...links.map((l) => el("option", { value: l.name, "data-kind": l.kind },
        l.kind === "janus" ? `${l.name} (Janus room ${l.room})` : l.name)));
    this.select.value = links.some((l) => l.name === chosen) ? chosen : "";
    this.picker.classList.toggle("hidden", !links.length);
  }

  show(path) {
    if (this.select.value !== (path.link ?? "")) this.select.value = path.link ?? "";
    this.path.textContent = path.text;
    this.path.className = `chip path ${path.kind}`;
    this.path.title = `How the data reaches this page: ${path.url}`;
  }
}
