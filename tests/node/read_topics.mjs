// Print the messages of some topics of an MCAP file as Foxglove reads them: @mcap/core's
// McapIndexedReader (zstd chunks through fzstd), each message JSON.parse'd, with its channel's
// schema name and log time. Usage: node read_topics.mjs FILE TOPIC... ; prints one JSON
// document {topic: [{schema, log_time_ns, message}]}, or {"error": ...} and exits 1.
import { open } from "node:fs/promises";

import { McapIndexedReader } from "@mcap/core";
import { decompress } from "fzstd";

const [path, ...topics] = process.argv.slice(2);
const file = await open(path, "r");
const readable = {
  size: async () => BigInt((await file.stat()).size),
  read: async (offset, size) => {
    const buffer = new Uint8Array(Number(size));
    await file.read(buffer, 0, buffer.length, Number(offset));
    return buffer;
  },
};
try {
  const reader = await McapIndexedReader.Initialize({
    readable,
    decompressHandlers: { zstd: (b, n) => decompress(b, new Uint8Array(Number(n))) },
  });
  const out = Object.fromEntries(topics.map((t) => [t, []]));
  const decoder = new TextDecoder();
  for await (const m of reader.readMessages({ topics, validateCrcs: true })) {
    const channel = reader.channelsById.get(m.channelId);
    out[channel.topic].push({
      schema: reader.schemasById.get(channel.schemaId)?.name ?? null,
      log_time_ns: String(m.logTime),
      message: JSON.parse(decoder.decode(m.data)),
    });
  }
  console.log(JSON.stringify(out));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error) }));
  process.exitCode = 1;
} finally {
  await file.close();
}
