// The breaking-change check (run by scripts/contract): each contract as it was released, in
// contracts/released/, against the current document. api-smart-diff's apiCompare finds and
// classifies the changes; a "breaking" one fails the check unless the current document's major
// version is greater than the released one's. Non-breaking changes are listed for the reviewer.
//
//   node contracts/breaking.mjs        (CONTRACT_ROOT=DIR reads DIR instead of the repository)
//
// Exit 0: no breaking change, or each is allowed by a major version bump. Exit 1: otherwise, or a
// document is missing or unreadable.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { bundle } from "api-ref-bundler";
import { apiCompare, jsonSchemaAnnotationHook, jsonSchemaRules } from "api-smart-diff";

const root = process.env.CONTRACT_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), "..");

/** The URL the JSON Schemas use to `$ref` the REST API's OpenAPI document (socketio-events'
 * conversations and messages are the API's): the released or the current openapi.json. */
const API_DOCUMENT_URL = "https://agent-portal.dev/openapi.json";

/**
 * `direction` says whose side a change can break:
 * - "api": an OpenAPI document; api-smart-diff judges requests and responses each its own way.
 * - "consumed": a JSON Schema of messages the service receives. api-smart-diff's JSON-Schema
 *   classification treats a schema as one of accepted input (narrowing breaks the senders), which
 *   is this case: compare (released, current).
 * - "emitted": a JSON Schema of payloads the service sends to clients. The reverse holds (a new
 *   enum value or a property no longer required breaks a client; a narrower schema does not), so it is
 *   compared the other way round, (current, released), and its changes are then read back in
 *   the released → current direction for the listing.
 */
const CONTRACTS = [
  { name: "openapi", released: "contracts/released/openapi.json", current: "docs/openapi.json", direction: "api" },
  { name: "agent-notifications", released: "contracts/released", current: "schemas", stem: "agent-notifications", direction: "consumed" },
  { name: "socketio-events", released: "contracts/released", current: "schemas", stem: "socketio-events", direction: "emitted" },
];

/** For a versioned JSON Schema: the `<stem>.vN.json` with the highest N in `dir` (repo-relative). */
function versionedFile(dir, stem) {
  const full = join(root, dir);
  const pattern = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.v(\\d+)\\.json$`);
  const found = existsSync(full)
    ? readdirSync(full)
        .map((f) => [f, pattern.exec(f)])
        .filter(([, m]) => m)
        .sort((a, b) => Number(b[1][1]) - Number(a[1][1]))
    : [];
  return found.length ? join(dir, found[0][0]) : join(dir, `${stem}.v1.json`);
}

function load(file) {
  const full = join(root, file);
  if (!existsSync(full)) return { missing: true };
  try {
    return { doc: JSON.parse(readFileSync(full, "utf8")) };
  } catch (err) {
    return { error: `${file} is not JSON: ${err.message}` };
  }
}

/** The major version: OpenAPI `info.version` (semver); a JSON Schema's `.vN.json` name, `$id`
 * and `version` property (`{"const": N}`), which must agree. Returns { major, label } or { error }. */
function version(doc, file, direction) {
  if (direction === "api") {
    const v = doc?.info?.version;
    const m = typeof v === "string" ? /^v?(\d+)\.\d+\.\d+(?:[-+].*)?$/.exec(v) : null;
    return m ? { major: Number(m[1]), label: v } : { error: `${file}: info.version ${JSON.stringify(v)} is not semver` };
  }
  const seen = [];
  const fromName = /\.v(\d+)\.json$/.exec(basename(file));
  if (fromName) seen.push(["file name", Number(fromName[1])]);
  const fromId = typeof doc?.$id === "string" ? /\.v(\d+)\.json$/.exec(doc.$id) : null;
  if (fromId) seen.push(["$id", Number(fromId[1])]);
  const prop = doc?.properties?.version;
  const value = prop?.const ?? (Array.isArray(prop?.enum) && prop.enum.length === 1 ? prop.enum[0] : undefined);
  if (Number.isInteger(value)) seen.push(["properties.version", value]);
  if (typeof doc?.version === "string" || Number.isInteger(doc?.version)) {
    const m = /^v?(\d+)/.exec(String(doc.version));
    if (m) seen.push(["version", Number(m[1])]);
  }
  if (!seen.length) return { error: `${file}: no version (a .vN.json name, $id, or properties.version const)` };
  const majors = new Set(seen.map(([, v]) => v));
  if (majors.size > 1) {
    return { error: `${file}: its versions disagree (${seen.map(([w, v]) => `${w} ${v}`).join(", ")})` };
  }
  return { major: seen[0][1], label: `v${seen[0][1]}` };
}

/**
 * A JSON Schema with its external `$ref`s brought in (api-smart-diff resolves only internal
 * ones), by api-ref-bundler. `api` is the OpenAPI document of the same side (released or
 * current) that API_DOCUMENT_URL stands for. Returns { doc } or { error }.
 */
async function bundled(file, doc, api) {
  const errors = [];
  const resolver = async (source) => {
    // api-ref-bundler joins references like file paths, which turns `https://` into `https:/`.
    const url = source.replace(/^(https?):\/(?!\/)/, "$1://");
    if (url === basename(file)) return structuredClone(doc);
    if (url === API_DOCUMENT_URL && api) return structuredClone(api);
    throw new Error(`${file}: cannot resolve ${url} (only ${API_DOCUMENT_URL}, the API's document, is known)`);
  };
  try {
    const out = await bundle(basename(file), resolver, { hooks: { onError: (message) => errors.push(message) } });
    return errors.length ? { error: `${file}: ${errors.join("; ")}` } : { doc: out };
  } catch (err) {
    const messages = Array.isArray(err) ? err.map((e) => e?.message ?? String(e)) : [err?.message ?? String(err)];
    return { error: messages.join("; ") };
  }
}

function compareOptions(direction, doc) {
  if (direction === "api") return {};
  // Keep allOf branches apart (the schemas use allOf of if/then per message type): merged, a
  // change of an if/then would be lost.
  const rules = jsonSchemaRules({
    version: String(doc.$schema ?? "").includes("2020-12") ? "2020-12" : "draft-04",
    notMergeAllOf: true,
  });
  if (direction === "consumed") return { rules };
  // Emitted: the comparison runs (current, released); describe each change as seen from released
  // to current (the action, before and after turned back).
  return {
    rules,
    annotateHook: (diff, ctx) =>
      jsonSchemaAnnotationHook(turnBack(diff), { ...ctx, before: ctx.after, after: ctx.before }),
  };
}

const FLIP = { add: "remove", remove: "add", replace: "replace", rename: "rename" };

function turnBack(diff) {
  return { ...diff, action: FLIP[diff.action], before: diff.after, after: diff.before };
}

function plural(n, what) {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

function pointer(path) {
  return "#/" + path.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
}

function brief(value) {
  if (value === undefined) return "";
  const s = JSON.stringify(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function scalar(value) {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

function line(diff) {
  const change =
    diff.action === "replace" || diff.action === "rename"
      ? ` (${brief(diff.before)} → ${brief(diff.after)})`
      : diff.action === "add" && scalar(diff.after)
        ? ` (+ ${brief(diff.after)})`
        : diff.action === "remove" && scalar(diff.before)
          ? ` (- ${brief(diff.before)})`
          : "";
  return `${pointer(diff.path)}: ${diff.description || `[${diff.action}]`}${change}`;
}

function notCompared(contract, problems) {
  console.log(`${contract.name}: not compared`);
  for (const p of problems) console.log(`  FAIL ${p}`);
  return { failed: true };
}

async function check(contract) {
  const currentFile = contract.stem ? versionedFile(contract.current, contract.stem) : contract.current;
  const releasedFile = contract.stem ? versionedFile(contract.released, contract.stem) : contract.released;
  const current = load(currentFile);
  const released = load(releasedFile);
  const problems = [];
  if (current.missing) problems.push(`${currentFile} does not exist yet: write it (the contract is checked once it does)`);
  if (released.missing) {
    problems.push(`${releasedFile} does not exist: copy the current document there when it ships (contracts/README.md)`);
  }
  for (const x of [current, released]) if (x.error) problems.push(x.error);
  if (problems.length) return notCompared(contract, problems);

  const was = version(released.doc, releasedFile, contract.direction);
  const now = version(current.doc, currentFile, contract.direction);
  for (const v of [was, now]) if (v.error) problems.push(v.error);
  if (problems.length) return notCompared(contract, problems);

  // apiCompare changes the documents it is given: hand it copies.
  let [releasedDoc, currentDoc] = [structuredClone(released.doc), structuredClone(current.doc)];
  if (contract.direction !== "api") {
    const [b, a] = await Promise.all([
      bundled(releasedFile, released.doc, load("contracts/released/openapi.json").doc),
      bundled(currentFile, current.doc, load("docs/openapi.json").doc),
    ]);
    for (const x of [b, a]) if (x.error) problems.push(x.error);
    if (problems.length) return notCompared(contract, problems);
    [releasedDoc, currentDoc] = [b.doc, a.doc];
  }
  const [before, after] = contract.direction === "emitted" ? [currentDoc, releasedDoc] : [releasedDoc, currentDoc];
  let diffs = apiCompare(before, after, compareOptions(contract.direction, released.doc)).diffs;
  if (contract.direction === "emitted") diffs = diffs.map(turnBack);

  // An OpenAPI document's components/schemas are compared on their own too, without knowing
  // whether a schema is read or written (a response-only enum losing a value shows as breaking
  // there). Each use of a schema is compared, in context, under its operation: count those.
  let aside = 0;
  if (contract.direction === "api") {
    const kept = diffs.filter((d) => !(d.path[0] === "components" && d.path[1] === "schemas"));
    aside = diffs.length - kept.length;
    diffs = kept;
  }

  const breaking = diffs.filter((d) => d.type === "breaking");
  const others = diffs.filter((d) => d.type !== "breaking");
  const bumped = now.major > was.major;
  const how =
    contract.direction === "emitted"
      ? ", emitted: classified reversed, by comparing (current, released)"
      : contract.direction === "consumed"
        ? ", consumed"
        : "";
  console.log(
    `${contract.name} (${releasedFile} ${was.label} → ${currentFile} ${now.label}${how}): ` +
      `${plural(diffs.length, "change")}, ${breaking.length} breaking` +
      (breaking.length && bumped ? " (allowed: major version bumped)" : ""),
  );
  for (const d of breaking) console.log(`  ${bumped ? "breaking (allowed)" : "BREAKING"}  ${line(d)}`);
  // Descriptions and examples (annotations) are counted, not listed: they change no client.
  const annotations = others.filter((d) => d.type === "annotation").length;
  for (const d of others.filter((d) => d.type !== "annotation")) {
    const label = d.type === "unclassified" ? "unclassified (review it)" : d.type;
    console.log(`  ${label}  ${line(d)}`);
  }
  if (annotations) console.log(`  (${plural(annotations, "annotation")}: descriptions, examples)`);
  if (aside) console.log(`  (${aside} more under #/components/schemas not counted: each use is judged in its operation above)`);

  if (now.major < was.major) {
    console.log(`  FAIL the major version went down, ${was.label} → ${now.label}`);
    return { failed: true };
  }
  if (breaking.length && !bumped) {
    const hint =
      contract.direction === "api"
        ? "bump info.version's major (CONTRACT_VERSION in bins/api/src/openapi.rs)"
        : `publish it as ${contract.stem}.v${was.major + 1}.json (and its version const/$id)`;
    console.log(`  FAIL ${plural(breaking.length, "breaking change")} without a major version bump: undo them, or ${hint}`);
    return { failed: true };
  }
  return { failed: false };
}

console.log(`breaking-change check: ${relative(process.cwd(), join(root, "contracts/released")) || "."} against the current documents`);
const results = [];
for (const contract of CONTRACTS) results.push(await check(contract));
const failed = results.filter((r) => r.failed).length;
if (failed) {
  console.log(`breaking-change check FAILED for ${failed} of ${CONTRACTS.length} contracts`);
  process.exitCode = 1;
} else {
  console.log(`breaking-change check passed for ${CONTRACTS.length} contracts`);
}
