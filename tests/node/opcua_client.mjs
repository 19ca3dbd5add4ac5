// An OPC UA client sensorlink did not write (node-opcua), for tests/test_opcua_node.py.
//   node opcua_client.mjs CONFIG_JSON
// CONFIG_JSON: {endpoint, user, password, policy, mode, namespace, subscribe: [nodeId...],
//               history: nodeId, want: {nodeId: count}}
// Prints one JSON object per line on stdout, after "@@ ": browse, read, history, ready (subscriptions are
// live: the test may now raise an alarm), event, ack, values, done. Exits non-zero on error.
import {
  AttributeIds, ClientMonitoredItem, ClientSubscription, DataChangeFilter, DataChangeTrigger,
  DataType, DeadbandType, MessageSecurityMode, OPCUAClient, SecurityPolicy, TimestampsToReturn,
  UserTokenType, constructEventFilter,
} from "node-opcua-client";

const cfg = JSON.parse(process.argv[2]);
// node-opcua logs on stdout too: our lines start with "@@ ".
const out = (obj) => process.stdout.write("@@ " + JSON.stringify(obj) + "\n");
const fail = (err) => { out({ type: "error", error: String(err && err.stack || err) }); process.exit(1); };
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));

async function main() {
  const client = OPCUAClient.create({
    applicationName: "node-opcua test client",
    endpointMustExist: false,
    securityMode: MessageSecurityMode[cfg.mode],
    securityPolicy: SecurityPolicy[cfg.policy],
    connectionStrategy: { maxRetry: 2, initialDelay: 200, maxDelay: 1000 },
  });
  await client.connect(cfg.endpoint);
  const session = await client.createSession(cfg.user
    ? { type: UserTokenType.UserName, userName: cfg.user, password: cfg.password }
    : undefined);
  const ns = (await session.readNamespaceArray()).indexOf(cfg.namespace);

  // Browse: the root folder, every sensor, every variable under it.
  const tree = {};
  const root = await session.browse(`ns=${ns};s=${cfg.root}`);
  for (const ref of root.references) {
    const children = await session.browse(ref.nodeId);
    tree[ref.browseName.name] = children.references.map((c) => c.browseName.name);
  }
  out({ type: "browse", ns, tree });

  // Read: a value with its timestamps and status, and its EngineeringUnits.
  const first = cfg.subscribe[0];
  const dv = await session.read({ nodeId: first, attributeId: AttributeIds.Value },
                                TimestampsToReturn.Both);
  const euPath = await session.translateBrowsePath({
    startingNode: first,
    relativePath: { elements: [{ referenceTypeId: "i=46", isInverse: false, includeSubtypes: true,
                                 targetName: { namespaceIndex: 0, name: "EngineeringUnits" } }] },
  });
  const euNode = euPath.targets && euPath.targets[0] ? euPath.targets[0].targetId : null;
  const euValue = euNode ? (await session.read({ nodeId: euNode, attributeId: AttributeIds.Value })).value.value : null;
  out({ type: "read", nodeId: first, value: dv.value.value, status: dv.statusCode.name,
        source_ms: dv.sourceTimestamp ? dv.sourceTimestamp.getTime() : null,
        eu: euValue ? { unitId: euValue.unitId, display: euValue.displayName.text,
                        namespace: euValue.namespaceUri } : null });

  // HistoryRead (raw) of the last hour.
  const now = new Date();
  const history = await session.readHistoryValue(cfg.history, new Date(now.getTime() - 3600e3), now);
  const values = (history.historyData && history.historyData.dataValues) || [];
  out({ type: "history", status: history.statusCode.name, count: values.length,
        first_ms: values.length ? values[0].sourceTimestamp.getTime() : null,
        last_ms: values.length ? values[values.length - 1].sourceTimestamp.getTime() : null });

  // Subscribe: data changes on every requested variable, events on the Server object.
  const subscription = ClientSubscription.create(session, {
    requestedPublishingInterval: 100, requestedLifetimeCount: 1000, requestedMaxKeepAliveCount: 20,
    maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 10,
  });
  const seen = {};
  const done = {};
  const allSeen = new Promise((resolve) => {
    for (const nodeId of cfg.subscribe) {
      seen[nodeId] = [];
      const item = ClientMonitoredItem.create(subscription, { nodeId, attributeId: AttributeIds.Value },
        // StatusValueTimestamp: every sample, also one with the same value as the one before
        // (the default trigger, StatusValue, reports only changes of value or status).
        { samplingInterval: 0, discardOldest: true, queueSize: 10000,
          filter: new DataChangeFilter({ trigger: DataChangeTrigger.StatusValueTimestamp,
                                         deadbandType: DeadbandType.None }) },
        TimestampsToReturn.Both);
      item.on("changed", (value) => {
        if (!value.statusCode.isGood()) return;
        seen[nodeId].push(value.sourceTimestamp.getTime());
        if (seen[nodeId].length >= (cfg.want[nodeId] || 1)) done[nodeId] = true;
        if (cfg.subscribe.every((n) => done[n])) resolve();
      });
    }
  });
  const fields = ["EventId", "SourceName", "Message", "Severity", "ConditionName", "ActiveState",
                  "ActiveState.Id", "AckedState.Id", "Retain", "ConditionId"];
  const events = ClientMonitoredItem.create(subscription, { nodeId: "i=2253", attributeId: AttributeIds.EventNotifier },
    { queueSize: 100, discardOldest: true, filter: constructEventFilter(fields) });
  const gotEvent = new Promise((resolve) => {
    events.on("changed", (eventFields) => {
      const e = {};
      fields.forEach((name, i) => { e[name] = eventFields[i].value; });
      if (e.ConditionName === cfg.alarm_rule) resolve(e);
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 300)); // let the monitored items be created
  out({ type: "ready" });

  if (cfg.alarm_rule) {  // a running demo has no alarm rules: no event to wait for
    const e = await Promise.race([gotEvent, deadline(60000, "the alarm event")]);
    out({ type: "event", rule: e.ConditionName, source: e.SourceName, severity: e.Severity,
          message: e.Message && e.Message.text, active: e["ActiveState.Id"], acked: e["AckedState.Id"],
          retain: e.Retain, condition: e.ConditionId && e.ConditionId.toString() });
    const result = await session.call({
      objectId: e.ConditionId, methodId: "i=9111",
      inputArguments: [{ dataType: DataType.ByteString, value: e.EventId },
                       { dataType: DataType.LocalizedText, value: { text: "seen by node" } }],
    });
    out({ type: "ack", status: result.statusCode.name });
  }
  await Promise.race([allSeen, deadline(60000, "values on every subscribed variable")]);
  out({ type: "values", seen });
  await subscription.terminate();
  await session.close();
  await client.disconnect();
  out({ type: "done" });
  process.exit(0); // node-opcua leaves timers behind that keep node alive for a minute
}

main().catch(fail);
