// The portal's own client library against the realtime service: refusal reasons, HTTP
// long-polling upgraded to WebSocket, a conversation room, a live event, and recovery of
// missed events with `last_seq`. Started by bins/realtime/tests/it/js_client.rs, which
// provides the services and these variables; exits non-zero on the first failed check.
import assert from "node:assert/strict";
import { io } from "socket.io-client";

const { REALTIME_URL, API_URL, AGENT_TOKEN, CONVERSATION_ID } = process.env;
const WAIT_MS = 10_000;

function connect(auth, options = {}) {
  return io(REALTIME_URL, { auth, reconnection: false, forceNew: true, ...options });
}

function next(emitter, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${WAIT_MS} ms`)), WAIT_MS);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** The events named `event` that arrive within `ms`. */
function collect(socket, event, ms) {
  const seen = [];
  socket.on(event, (payload) => seen.push(payload));
  return new Promise((resolve) => setTimeout(() => resolve(seen), ms));
}

async function send(text) {
  const response = await fetch(`${API_URL}/api/conversations/${CONVERSATION_ID}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${AGENT_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ type: "text", text }),
  });
  const body = await response.text();
  assert.equal(response.status, 202, body);
  return JSON.parse(body);
}

// A bad token: connect_error with the reason.
const refused = connect({ token: "not.a.jwt" });
const [error] = await next(refused, "connect_error");
assert.equal(error.message, "unauthorized: the token is malformed");
refused.close();

// Long-polling first (as behind proxies that block WebSocket), then upgraded.
const socket = connect({ token: AGENT_TOKEN });
let firstTransport;
socket.io.on("open", () => {
  firstTransport = socket.io.engine.transport.name;
});
await next(socket, "connect");
assert.equal(firstTransport, "polling");
if (socket.io.engine.transport.name !== "websocket") {
  await next(socket.io.engine, "upgrade");
}
assert.equal(socket.io.engine.transport.name, "websocket");

const joined = await socket.timeout(WAIT_MS).emitWithAck("conversation:join", CONVERSATION_ID);
assert.deepEqual(joined, { ok: true, conversation_id: CONVERSATION_ID });
const missing = await socket
  .timeout(WAIT_MS)
  .emitWithAck("conversation:join", "00000000-0000-0000-0000-000000000000");
assert.equal(missing.ok, false);
assert.equal(missing.error.status, 404);

// A live event, once, although the socket is in both the agent's and the conversation's room.
const live = collect(socket, "message:new", 1000);
const sent = await send("hello from node");
const [event, ...more] = await live;
assert.equal(more.length, 0, "delivered once");
assert.equal(event.message.id, sent.id);
assert.equal(event.message.text, "hello from node");
assert.equal(event.conversation.id, CONVERSATION_ID);
assert.equal(typeof event.seq, "number");
const lastSeq = event.seq;
socket.disconnect();

// Missed while away; replayed in order on reconnect (WebSocket only this time).
await send("missed one");
await send("missed two");
const again = connect({ token: AGENT_TOKEN, last_seq: lastSeq }, { transports: ["websocket"] });
const replayed = collect(again, "message:new", 1500);
await next(again, "connect");
const events = await replayed;
assert.deepEqual(
  events.map((e) => [e.seq, e.message.text]),
  [
    [lastSeq + 1, "missed one"],
    [lastSeq + 2, "missed two"],
  ],
);
again.disconnect();
console.log("socket.io-client: all checks passed");
