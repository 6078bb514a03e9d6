// Approve a plan as the `upstream` NATS user, then follow what becomes of it as the `subscriber` user.
//
//   cd docs/examples && npm ci
//   NATS_URL=nats://127.0.0.1:4222 NATS_UPSTREAM_PASSWORD=... NATS_SUBSCRIBER_PASSWORD=... node upstream.mjs plan.json
//
// The same steps as upstream.py, with nothing but the NATS client: the envelope is written by hand, as the
// AsyncAPI document (docs/contracts/asyncapi.json) describes it. docs/clients.md explains each step.
import { readFileSync } from "node:fs";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { v5 as uuidv5 } from "uuid";

// Deterministic ids are UUIDv5 in this namespace (contracts/envelope.py, FLEET_NAMESPACE).
const FLEET_NAMESPACE = "6f1c2d1e-5b7a-4f7e-9a55-2a1f0c3e9b10";
const APPROVED = "planning.plan.approved.v1";
const ANSWERS = [
  "orchestration.plan.accepted.v1",
  "orchestration.plan.rejected.v1",
  "orchestration.plan.concluded.v1",
  "orchestration.deliberation.completed.v1",
  "orchestration.deliberation.failed.v1",
];

const deliberationId = (storyId, planId, taskId, role) =>
  uuidv5(["deliberation", storyId, planId, taskId, role].join("/"), FLEET_NAMESPACE);

function connectAs(user, pass) {
  // Each user may read replies only under its own inbox prefix. No password: a NATS without users.
  const credentials = pass ? { user, pass } : {};
  return connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222", ...credentials, inboxPrefix: `_INBOX.${user}` });
}

const approval = JSON.parse(readFileSync(process.argv[2], "utf8"));
const upstream = await connectAs("upstream", process.env.NATS_UPSTREAM_PASSWORD);
const subscriber = await connectAs("subscriber", process.env.NATS_SUBSCRIBER_PASSWORD);

// One event id per plan: publishing the same approval again is de-duplicated, never a second run.
const eventId = `${approval.plan_id}-approved`;
const ours = (event) => event.story_id === approval.story_id && event.plan_id === approval.plan_id;

// Live answers: core subscriptions on one connection, in place before the approval is published, so they
// come in the order the mesh caused them. They see what is stored while connected; upstream.py reads the
// log instead (an ordered consumer per subject), which also resumes after a reconnect.
let finish;
const finished = new Promise((resolve) => (finish = resolve));
function onAnswer(error, message) {
  if (error) return finish(1);
  const event = message.json();
  if (message.subject === "orchestration.plan.rejected.v1") {
    if (event.approval_id !== eventId) return;
    console.log(`rejected ${event.reasons.join("; ")}`);
    return finish(1);
  }
  if (!ours(event)) return;
  if (message.subject === "orchestration.plan.accepted.v1") {
    console.log(`accepted ${event.deliberations.length}`);
  } else if (message.subject === "orchestration.deliberation.completed.v1") {
    console.log(`completed ${event.deliberation_id} winner ${event.winner.agent_id}`);
  } else if (message.subject === "orchestration.deliberation.failed.v1") {
    console.log(`failed ${event.deliberation_id} ${event.reason}`);
  } else {
    console.log(`concluded ${event.completed} completed ${event.failed} not`);
    finish(event.failed === 0 ? 0 : 1);
  }
}
for (const subject of ANSWERS) subscriber.subscribe(subject, { callback: onAnswer });
await subscriber.flush();

const envelope = headers();
envelope.set("Fleet-Event-Type", "plan.approved");
envelope.set("Fleet-Schema-Version", "1");
envelope.set("Fleet-Occurred-At", new Date().toISOString());
envelope.set("Fleet-Producer", "node-example");
const tasks = approval.tasks.length ? approval.tasks.map((t) => t.task_id) : [approval.plan_id];
const ids = tasks.flatMap((task) => approval.roles.map((role) => deliberationId(approval.story_id, approval.plan_id, task, role)));
console.log(`publishing ${eventId}: deliberations ${ids.join(", ")}`);
const ack = await jetstream(upstream).publish(APPROVED, JSON.stringify(approval), { msgID: eventId, headers: envelope });
if (ack.duplicate) {
  // Stored before and answered then; `fleet story show` has the answers.
  console.log("duplicate: this approval is already in the log");
  finish(0);
}

const timeout = setTimeout(() => finish(1), Number(process.env.FOLLOW_TIMEOUT_S ?? 3600) * 1000);
const status = await finished;
clearTimeout(timeout);
await upstream.close();
await subscriber.close();
process.exit(status);
