// Read an MCAP file the way Foxglove does: @mcap/core's McapIndexedReader, through the summary
// and chunk index, zstd chunks decompressed by fzstd, every message JSON.parse'd (the app's
// decoder for "json" channels). Prints one JSON document; on failure prints {"error": ...}
// and exits 1. Usage: node read_mcap.mjs FILE
import { open } from "node:fs/promises";

import { McapIndexedReader } from "@mcap/core";
import { decompress } from "fzstd";

const file = await open(process.argv[2], "r");
const readable = {
  size: async () => BigInt((await file.stat()).size),
  read: async (offset, size) => {
    const buffer = new Uint8Array(Number(size));
    const { bytesRead } = await file.read(buffer, 0, buffer.length, Number(offset));
    if (bytesRead !== buffer.length) {
      throw new Error(`short read at ${offset}: ${bytesRead} of ${size} bytes`);
    }
    return buffer;
  },
};
const decompressHandlers = {
  zstd: (buffer, decompressedSize) => decompress(buffer, new Uint8Array(Number(decompressedSize))),
};

try {
  const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
  const topicOf = new Map([...reader.channelsById].map(([id, c]) => [id, c.topic]));
  const statistics = {};
  for (const [id, count] of reader.statistics?.channelMessageCounts ?? []) {
    statistics[topicOf.get(id)] = Number(count);
  }
  const read = {};
  let unparsed = 0;
  const decoder = new TextDecoder();
  for await (const message of reader.readMessages({ validateCrcs: true })) {
    const topic = topicOf.get(message.channelId);
    read[topic] = (read[topic] ?? 0) + 1;
    try {
      JSON.parse(decoder.decode(message.data));
    } catch {
      unparsed += 1;
    }
  }
  const metadata = [];
  for await (const m of reader.readMetadata()) {
    metadata.push(m.name);
  }
  const channels = [...reader.channelsById.values()].map((c) => ({
    topic: c.topic,
    messageEncoding: c.messageEncoding,
    schema: reader.schemasById.get(c.schemaId)?.name ?? null,
    schemaEncoding: reader.schemasById.get(c.schemaId)?.encoding ?? null,
  }));
  console.log(JSON.stringify({
    library: reader.header.library,
    chunks: reader.chunkIndexes.length,
    hasStatistics: reader.statistics !== undefined,
    statistics,
    read,
    unparsed,
    metadata,
    channels,
  }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error) }));
  process.exitCode = 1;
} finally {
  await file.close();
}
