// One writer through an official Node client with its default settings: single-event
// appends of 256 bytes, one at a time, for SECS seconds after a short warm-up. Prints
// appends/s and the p50/p99 latency.
// Usage: NODE_CLIENTS=DIR node latency.mjs PORT [SECS] [PACKAGE], PACKAGE being
// @kurrent/kurrentdb-client (default) or @eventstore/db-client, installed under DIR
// (scripts/client-latency.sh installs both into target/node-clients).
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [port, secsArg, pkg = "@kurrent/kurrentdb-client"] = process.argv.slice(2);
const secs = Number(secsArg ?? 10);
const clients = createRequire(join(process.env.NODE_CLIENTS ?? process.cwd(), "package.json"));
const lib = await import(pathToFileURL(clients.resolve(pkg)).href);
const Client = lib.KurrentDBClient ?? lib.EventStoreDBClient;
const scheme = lib.KurrentDBClient ? "kurrentdb" : "esdb";
const client = Client.connectionString(`${scheme}://127.0.0.1:${port}?tls=false`);
const stream = `latency-node-${randomUUID()}`;
const data = new Uint8Array(256).fill(120);

async function append() {
  await client.appendToStream(stream, lib.binaryEvent({ type: "latency", data }));
}

for (let i = 0; i < 20; i++) await append();
const latencies = [];
const started = performance.now();
while (performance.now() - started < secs * 1000) {
  const t = performance.now();
  await append();
  latencies.push(performance.now() - t);
}
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const quantile = (q) =>
  latencies[Math.max(0, Math.min(latencies.length - 1, Math.ceil(latencies.length * q) - 1))];
console.log(
  `${pkg} (Node ${process.version}), defaults, 1 writer: ${latencies.length} appends in ` +
    `${elapsed.toFixed(1)} s = ${(latencies.length / elapsed).toFixed(0)}/s, ` +
    `p50 ${quantile(0.5).toFixed(2)} ms, p99 ${quantile(0.99).toFixed(2)} ms`,
);
await client.dispose();
