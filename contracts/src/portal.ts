// The portal's first steps, as the frontend takes them, through a client typed by the OpenAPI
// document alone (src/generated/api.d.ts, made by openapi-typescript from docs/openapi.json):
// a change of the document that breaks these calls fails `tsc`, and a server that answers
// otherwise than its document says fails here.
//
//   API_URL=http://127.0.0.1:8080 AGENT_TOKEN=... SUPERVISOR_TOKEN=... node contracts/build/portal.js
//
// Needs at least one conversation that is not closed, visible to the supervisor. It sends one
// text message there (twice with the same Idempotency-Key: the retry must send nothing).
// Prints one line per step; exits 1 on the first mismatch, 2 when the environment is incomplete.

import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api.js";

type Conversation = components["schemas"]["Conversation"];

class Mismatch extends Error {}

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`portal: ${name} is not set (needs API_URL, AGENT_TOKEN, SUPERVISOR_TOKEN)`);
    process.exit(2);
  }
  return value;
}

function client(token: string) {
  // The document's server is `/api`: its paths are relative to it.
  return createClient<paths>({
    baseUrl: `${env("API_URL").replace(/\/+$/, "")}/api`,
    headers: { Authorization: `Bearer ${token}` },
  });
}

function fail(step: string, why: string): never {
  throw new Mismatch(`${step}: ${why}`);
}

function check(step: string, ok: boolean, why: string): void {
  if (!ok) fail(step, why);
}

/** The API omits an absent value, never sends `null`: the JSON pointers of any nulls in `body`. */
function nulls(body: unknown, at = ""): string[] {
  if (body === null) return [at || "/"];
  if (Array.isArray(body)) return body.flatMap((v, i) => nulls(v, `${at}/${i}`));
  if (typeof body === "object") {
    return Object.entries(body as Record<string, unknown>).flatMap(([k, v]) =>
      nulls(v, `${at}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`),
    );
  }
  return [];
}

/** Awaits one call, checks its status and that its body has no `null`, and returns its body. */
async function expect<T>(
  step: string,
  status: number,
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  const where = response.url.replace(/^https?:\/\/[^/]+/, "");
  if (response.status !== status) {
    fail(step, `expected ${status} from ${where}, got ${response.status}: ${JSON.stringify(error ?? data)}`);
  }
  const found = nulls(data ?? error);
  check(step, found.length === 0, `null at ${found.join(", ")} in the body of ${where} (absent values are omitted)`);
  if (data === undefined) fail(step, `no body from ${where}`);
  return data;
}

function done(step: string, detail: string): void {
  console.log(`ok   ${step}: ${detail}`);
}

/** The `sub` claim of a JWT (read, not verified: the server verifies it). */
function subject(token: string): string {
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"));
  } catch {
    throw new Mismatch("AGENT_TOKEN: not a JWT (its payload is not base64url JSON)");
  }
  const sub = (claims as { sub?: unknown } | null)?.sub;
  if (typeof sub !== "string") throw new Mismatch("AGENT_TOKEN: its payload has no `sub` claim");
  return sub;
}

async function main(): Promise<void> {
  const supervisor = client(env("SUPERVISOR_TOKEN"));
  const agentToken = env("AGENT_TOKEN");
  const agent = client(agentToken);

  // The supervisor's list: every conversation of the tenant.
  let step = "list conversations as the supervisor";
  const page = await expect(step, 200, supervisor.GET("/conversations", { params: { query: { limit: 5 } } }));
  check(step, page.items.length <= 5, `limit=5 gave ${page.items.length} items`);
  const first = page.items[0];
  if (first === undefined) fail(step, "no conversation: the check needs at least one that is not closed");
  done(step, `${page.items.length} items${page.next_cursor === undefined ? "" : ", more pages"}`);

  step = "open the first conversation";
  let conversation: Conversation = await expect(
    step,
    200,
    supervisor.GET("/conversations/{id}", { params: { path: { id: first.id } } }),
  );
  check(step, conversation.id === first.id, `asked for ${first.id}, got ${conversation.id}`);
  done(step, `${conversation.id} (${conversation.state})`);

  if (conversation.state === "closed") {
    step = "list open conversations (the first is closed)";
    const open = await expect(
      step,
      200,
      supervisor.GET("/conversations", { params: { query: { state: ["active", "waiting"], limit: 5 } } }),
    );
    const pick = open.items[0];
    if (pick === undefined) fail(step, "no active or waiting conversation to send in");
    const states = open.items.map((c) => c.state);
    check(step, states.every((s) => s !== "closed"), `state=active&state=waiting listed ${states.join(", ")}`);
    done(step, `${open.items.length} items`);

    step = "open an open conversation";
    conversation = await expect(step, 200, supervisor.GET("/conversations/{id}", { params: { path: { id: pick.id } } }));
    check(step, conversation.id === pick.id, `asked for ${pick.id}, got ${conversation.id}`);
    check(step, conversation.state !== "closed", `${pick.id} is listed as ${pick.state} but opens as closed`);
    done(step, `${conversation.id} (${conversation.state})`);
  }
  const id = conversation.id;

  step = "send a text message as the supervisor";
  const text = `contract check ${new Date().toISOString()}`;
  const key = randomUUID();
  const send = () =>
    supervisor.POST("/conversations/{id}/messages", {
      params: { path: { id }, header: { "Idempotency-Key": key } },
      body: { type: "text", text },
    });
  const call = send();
  const sent = await expect(step, 202, call);
  const location = (await call).response.headers.get("Location");
  check(step, sent.conversation_id === id, `sent to ${id}, stored in ${sent.conversation_id}`);
  check(step, sent.text === text, `sent ${JSON.stringify(text)}, answered ${JSON.stringify(sent.text)}`);
  check(step, sent.status === "pending", `a new message is pending, this one is ${sent.status}`);
  check(step, sent.direction === "outbound" && sent.content_type === "text", `${sent.direction} ${sent.content_type}`);
  check(step, location?.endsWith(`/messages/${sent.id}`) === true, `Location is ${location}`);
  done(step, `${sent.id}, 202, Location ${location}`);

  step = "retry the send with the same Idempotency-Key";
  const retry = send();
  const replayed = await expect(step, 202, retry);
  check(step, replayed.id === sent.id, `the retry stored another message, ${replayed.id}`);
  const replayHeader = (await retry).response.headers.get("Idempotent-Replayed");
  check(step, replayHeader === "true", `Idempotent-Replayed is ${replayHeader}`);
  done(step, `the same message ${replayed.id}, Idempotent-Replayed: true`);

  step = "read the message back";
  const read = await expect(step, 200, supervisor.GET("/messages/{id}", { params: { path: { id: sent.id } } }));
  check(step, read.id === sent.id, `asked for ${sent.id}, got ${read.id}`);
  check(step, read.text === text, `sent ${JSON.stringify(text)}, read ${JSON.stringify(read.text)}`);
  done(step, `${read.id} (${read.status})`);

  step = "list the conversation's messages";
  const history = await expect(
    step,
    200,
    supervisor.GET("/conversations/{id}/messages", { params: { path: { id }, query: { limit: 100 } } }),
  );
  const listed = history.items.find((m) => m.id === sent.id);
  check(step, listed !== undefined, `${sent.id} is not among the latest ${history.items.length} messages`);
  check(step, listed?.text === text, `listed with text ${JSON.stringify(listed?.text)}`);
  done(step, `${history.items.length} messages, the sent one among them`);

  // An agent sees the conversations assigned to it and the unassigned waiting ones, no others.
  step = "list conversations as the agent";
  const me = subject(agentToken);
  const mine = await expect(step, 200, agent.GET("/conversations", { params: { query: { limit: 100 } } }));
  const foreign = mine.items.filter((c) => c.assignee?.id !== me && !(c.state === "waiting" && c.assignee === undefined));
  check(step, foreign.length === 0, `the agent sees ${foreign.map((c) => c.id).join(", ")}, neither its own nor unassigned waiting`);
  done(step, `${mine.items.length} items, each its own or unassigned waiting`);
}

main().then(
  () => console.log("portal: every step answered as the OpenAPI document says"),
  (err: unknown) => {
    if (err instanceof Mismatch) {
      console.error(`FAIL ${err.message}`);
    } else if (err instanceof TypeError) {
      // A request that got no answer at all (e.g. connection refused) rejects with a TypeError.
      const cause = err.cause instanceof Error ? ` (${err.cause.message})` : "";
      console.error(`FAIL ${err.message}${cause}: is the API at ${process.env["API_URL"]}?`);
    } else {
      console.error("FAIL", err);
    }
    process.exitCode = 1;
  },
);
