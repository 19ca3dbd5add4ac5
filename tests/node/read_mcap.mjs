// Read an MCAP file the way Foxglove does: @mcap/core's McapIndexedReader, through the summary
// and chunk index, zstd chunks decompressed by fzstd, every "json" message JSON.parse'd and every
// "protobuf" message decoded by protobufjs from the channel's FileDescriptorSet (the app's
// decoders: Root.fromDescriptor, then lookupType(schema name)). Prints one JSON document; on failure prints {"error": ...}
// and exits 1. Usage: node read_mcap.mjs FILE
import { open } from "node:fs/promises";

import { McapIndexedReader } from "@mcap/core";
import { decompress } from "fzstd";
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";

// schema id -> a decode function, as Foxglove's mcap-support builds one per channel
function decoderFor(schema) {
  if (schema.encoding !== "protobuf") {
    const text = new TextDecoder();
    return (data) => JSON.parse(text.decode(data));
  }
  const root = protobuf.Root.fromDescriptor(descriptor.FileDescriptorSet.decode(schema.data));
  const type = root.lookupType(schema.name);
  return (data) => type.toObject(type.decode(data), { longs: Number, defaults: true });
}

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
  // the first message of each protobuf topic, bytes as their length (for the tests to check)
  const firstProtobuf = {};
  const decoders = new Map();
  for (const [id, schema] of reader.schemasById) {
    decoders.set(id, decoderFor(schema));
  }
  for await (const message of reader.readMessages({ validateCrcs: true })) {
    const channel = reader.channelsById.get(message.channelId);
    const topic = channel.topic;
    read[topic] = (read[topic] ?? 0) + 1;
    try {
      const body = decoders.get(channel.schemaId)(message.data);
      if (channel.messageEncoding === "protobuf" && !(topic in firstProtobuf)) {
        firstProtobuf[topic] = Object.fromEntries(Object.entries(body).map(
          ([k, v]) => [k, v instanceof Uint8Array ? { bytes: v.length } : v]));
      }
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
    firstProtobuf,
    metadata,
    channels,
  }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error) }));
  process.exitCode = 1;
} finally {
  await file.close();
}
