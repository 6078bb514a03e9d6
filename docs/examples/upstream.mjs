// Approve a plan as the `upstream` NATS user, then follow what becomes of it as the `subscriber` user.
//
//   cd docs/examples && npm ci
//   NATS_URL=nats://127.0.0.1:4222 NATS_UPSTREAM_PASSWORD=... NATS_SUBSCRIBER_PASSWORD=... node upstream.mjs plan.json
//
// The same steps as upstream.py, with nothing but the NATS client: the envelope is written by hand, as the
// AsyncAPI document (docs/contracts/asyncapi.json) describes it. docs/clients.md explains each step.
import { readFileSync } from "node:fs";
import { connect, headers } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
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
// The PLANNING stream drops a repeated Nats-Msg-Id for an hour.
const DUPLICATE_WINDOW_MS = 60 * 60 * 1000;

const deliberationId = (storyId, planId, taskId, role) =>
  uuidv5(["deliberation", storyId, planId, taskId, role].join("/"), FLEET_NAMESPACE);

function connectAs(user, pass) {
  // Each user may read replies only under its own inbox prefix.
  return connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222", user, pass, inboxPrefix: `_INBOX.${user}` });
}

const approval = JSON.parse(readFileSync(process.argv[2], "utf8"));
const upstream = await connectAs("upstream", process.env.NATS_UPSTREAM_PASSWORD);
const subscriber = await connectAs("subscriber", process.env.NATS_SUBSCRIBER_PASSWORD);

// The answers are read from just after what ORCHESTRATION holds now, so none can be missed.
const orchestration = await (await jetstreamManager(subscriber)).streams.info("ORCHESTRATION");
let from = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: orchestration.state.last_seq + 1 };

// One event id per plan: publishing the same approval again is de-duplicated, never a second run.
const eventId = `${approval.plan_id}-approved`;
const envelope = headers();
envelope.set("Fleet-Event-Type", "plan.approved");
envelope.set("Fleet-Schema-Version", "1");
envelope.set("Fleet-Occurred-At", new Date().toISOString());
envelope.set("Fleet-Producer", "node-example");
const ack = await jetstream(upstream).publish(APPROVED, JSON.stringify(approval), { msgID: eventId, headers: envelope });
if (ack.duplicate) {
  // Stored before, and answered then: read the answers from the start of the de-duplication window.
  from = { deliver_policy: DeliverPolicy.StartTime,
           opt_start_time: new Date(Date.now() - DUPLICATE_WINDOW_MS - 60_000).toISOString() };
}
const tasks = approval.tasks.length ? approval.tasks.map((t) => t.task_id) : [approval.plan_id];
const ids = tasks.flatMap((task) => approval.roles.map((role) => deliberationId(approval.story_id, approval.plan_id, task, role)));
console.log(`published ${eventId}: deliberations ${ids.join(", ")}`);

// An ordered consumer: nothing durable is created, nothing is acked, the stream's order is kept.
const consumer = await jetstream(subscriber).consumers.get("ORCHESTRATION", { filter_subjects: ANSWERS, ...from });
const messages = await consumer.consume();
let status = 1;
const timer = setTimeout(() => messages.stop(), Number(process.env.FOLLOW_TIMEOUT_S ?? 3600) * 1000);
for await (const message of messages) {
  const event = message.json();
  if (message.subject === "orchestration.plan.rejected.v1") {
    if (event.approval_id !== eventId) continue;
    console.log(`rejected ${event.reasons.join("; ")}`);
    break;
  }
  if (event.story_id !== approval.story_id || event.plan_id !== approval.plan_id) continue;
  if (message.subject === "orchestration.plan.accepted.v1") {
    console.log(`accepted ${event.deliberations.length}`);
  } else if (message.subject === "orchestration.deliberation.completed.v1") {
    console.log(`completed ${event.deliberation_id} winner ${event.winner.agent_id}`);
  } else if (message.subject === "orchestration.deliberation.failed.v1") {
    console.log(`failed ${event.deliberation_id} ${event.reason}`);
  } else {
    console.log(`concluded ${event.completed} completed ${event.failed} not`);
    status = event.failed === 0 ? 0 : 1;
    break;
  }
}
clearTimeout(timer);
await messages.close();
await upstream.close();
await subscriber.close();
process.exit(status);
