/*
 * Span attribute names. The messaging and HTTP ones are the OpenTelemetry semantic
 * conventions' (messaging spans: https://opentelemetry.io/docs/specs/semconv/messaging/,
 * Kafka: .../messaging/kafka/); they are spelled out here because the conventions package
 * keeps them among its unstable ("incubating") names, and the worker SDK depends on
 * @opentelemetry/api alone. The `sous.*` ones are sous's own.
 */
export const ATTR = {
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestinationName: 'messaging.destination.name',
  messagingDestinationPartitionId: 'messaging.destination.partition.id',
  messagingMessageId: 'messaging.message.id',
  messagingConsumerGroupName: 'messaging.consumer.group.name',
  messagingClientId: 'messaging.client.id',
  messagingKafkaMessageKey: 'messaging.kafka.message.key',
  messagingKafkaOffset: 'messaging.kafka.offset',
  errorType: 'error.type',
  httpRequestMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpResponseStatusCode: 'http.response.status_code',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  userAgentOriginal: 'user_agent.original',
  executionId: 'sous.execution.id',
  parentExecutionId: 'sous.execution.parent_id',
  recipeName: 'sous.recipe.name',
  recipeVersion: 'sous.recipe.version',
  triggerKind: 'sous.trigger.kind',
  decisionEvents: 'sous.decision.events',
  stepKey: 'sous.step.key',
  stepExecutionId: 'sous.step.execution_id',
  stepAttempt: 'sous.step.attempt',
  capability: 'sous.capability',
  replyKind: 'sous.reply.kind',
  workerId: 'sous.worker.id',
} as const;

/** `messaging.system` of every sous message. */
export const MESSAGING_SYSTEM_KAFKA = 'kafka';
