// The GraphQL documents the console sends, with the shapes of their answers.

export const STATUSES = ['RUNNING', 'PAUSED', 'COMPENSATING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'] as const;
export type ExecutionStatus = (typeof STATUSES)[number];
export const TERMINAL: readonly ExecutionStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

export interface ExecutionRow {
  id: string;
  recipe: string;
  version: number;
  status: ExecutionStatus;
  idempotencyKey: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export const EXECUTIONS = `
query Executions($filter: ExecutionFilter, $first: Int, $after: String) {
  executions(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id recipe version status idempotencyKey createdAt updatedAt finishedAt } }
    pageInfo { hasNextPage endCursor }
  }
}`;
export interface ExecutionsData {
  executions: {
    edges: { cursor: string; node: ExecutionRow }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

export const EXECUTIONS_CHANGED = `
subscription ExecutionsChanged($filter: ExecutionChangeFilter) {
  executionsChanged(filter: $filter) { id status seq }
}`;

export interface Attempt {
  id: string;
  attempt: number;
  capability: string;
  input: unknown;
  region: string | null;
  status: string;
  workerId: string | null;
  error: unknown;
  scheduledAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  waitSeconds: number | null;
  runSeconds: number | null;
  shard: { id: string; service: string; region: string | null } | null;
}

export interface StepRow {
  key: string;
  stepId: string;
  itemIndex: number | null;
  compensation: boolean;
  kind: string;
  status: string;
  attemptCount: number;
  output: unknown;
  error: unknown;
  createdAt: string;
  finishedAt: string | null;
  waitingForShard: { code: string; reason: string } | null;
  attempts: Attempt[];
}

export interface Bucket {
  stepKey: string;
  items: number;
  done: number;
  notStarted: number;
  ready: Record<string, number[]>;
  inFlight: Record<string, number>;
  failed: string | null;
}

export interface ExecutionDetail extends ExecutionRow {
  input: unknown;
  output: unknown;
  error: unknown;
  steps: StepRow[];
  events: { seq: number; type: string; at: string; data: unknown }[];
  buckets: Bucket[];
}

export const EXECUTION = `
query Execution($id: ID!) {
  execution(id: $id) {
    id recipe version status idempotencyKey createdAt updatedAt finishedAt input output error
    steps {
      key stepId itemIndex compensation kind status attemptCount output error createdAt finishedAt
      waitingForShard { code reason }
      attempts {
        id attempt capability input region status workerId error scheduledAt startedAt finishedAt waitSeconds runSeconds
        shard { id service region }
      }
    }
    events(first: 1000) { seq type at data }
    buckets { stepKey items done notStarted ready inFlight failed }
  }
}`;
export interface ExecutionData {
  execution: ExecutionDetail | null;
}

export const RECIPE_PLANS = `query RecipePlans($name: String!) { recipe(name: $name) { name versions { version plan } } }`;
export interface RecipePlansData {
  recipe: { name: string; versions: { version: number; plan: unknown }[] } | null;
}

export const EXECUTION_UPDATED = `
subscription ExecutionUpdated($id: ID!) { executionUpdated(id: $id) { id status updatedAt } }`;

const ACTION_FIELDS = 'id status';
export const ACTIONS = {
  retry: `mutation Retry($id: ID!, $key: String!) { retryStep(executionId: $id, stepKey: $key) { ${ACTION_FIELDS} } }`,
  skip: `mutation Skip($id: ID!, $key: String!, $output: JSON) { skipStep(executionId: $id, stepKey: $key, output: $output) { ${ACTION_FIELDS} } }`,
  rerun: `mutation Rerun($id: ID!, $stepId: String!) { rerunFromStep(executionId: $id, stepId: $stepId) { ${ACTION_FIELDS} } }`,
  cancel: `mutation Cancel($id: ID!, $reason: String) { cancelExecution(id: $id, reason: $reason) { ${ACTION_FIELDS} } }`,
  pause: `mutation Pause($id: ID!) { pauseExecution(id: $id) { ${ACTION_FIELDS} } }`,
  resume: `mutation Resume($id: ID!) { resumeExecution(id: $id) { ${ACTION_FIELDS} } }`,
  signal: `mutation Signal($id: ID!, $name: String!, $payload: JSON) { signal(executionId: $id, name: $name, payload: $payload) { ${ACTION_FIELDS} } }`,
} as const;

export interface DeadLetter {
  id: string;
  status: string;
  originalTopic: string;
  key: string | null;
  headers: Record<string, unknown>;
  payload: unknown;
  payloadText: string | null;
  errorCode: string;
  errorMessage: string;
  capability: string | null;
  executionId: string | null;
  stepKey: string | null;
  ingestedAt: string;
  failedAt: string | null;
  reprocessCount: number;
}

export const DEAD_LETTERS = `
query DeadLetters($filter: DeadLetterFilter, $after: DateTime, $before: DateTime) {
  deadLetters(filter: $filter, first: 200, ingestedAfter: $after, ingestedBefore: $before) {
    id status originalTopic key headers payload payloadText errorCode errorMessage capability executionId stepKey
    ingestedAt failedAt reprocessCount
  }
}`;
export interface DeadLettersData {
  deadLetters: DeadLetter[];
}

export const REPROCESS = `
mutation Reprocess($ids: [ID!], $payload: JSON) {
  reprocessDeadLetters(ids: $ids, payload: $payload) { deadLetterId messageId stepRequeued }
}`;
export interface ReprocessData {
  reprocessDeadLetters: { deadLetterId: string; messageId: string; stepRequeued: boolean }[];
}
export const DISCARD = `mutation Discard($ids: [ID!]) { discardDeadLetters(ids: $ids) }`;

export const RECIPES = `query Recipes { recipes { name latestVersion versions { version checksum createdAt plan } } }`;
export interface RecipesData {
  recipes: {
    name: string;
    latestVersion: number;
    versions: { version: number; checksum: string; createdAt: string; plan: unknown }[];
  }[];
}

export interface Shard {
  id: string;
  service: string;
  instance: string;
  region: string | null;
  health: 'HEALTHY' | 'DEGRADED' | 'DRAINING';
  reason: string | null;
  capabilities: { name: string; version: number }[];
  inFlight: number;
  concurrency: number;
  lastHeartbeatAt: string;
  drainRequestedAt: string | null;
  drainRequestedBy: string | null;
}
const SHARD_FIELDS = `id service instance region health reason capabilities { name version } inFlight concurrency
  lastHeartbeatAt drainRequestedAt drainRequestedBy`;
export const SHARDS = `query Shards { shards { ${SHARD_FIELDS} } }`;
export interface ShardsData {
  shards: Shard[];
}
export const SHARDS_CHANGED = `subscription ShardsChanged { shardsChanged { shardId kind } }`;
export const DRAIN = `mutation Drain($id: ID!) { drainShard(id: $id) { ${SHARD_FIELDS} } }`;
export const RESUME_SHARD = `mutation ResumeShard($id: ID!) { resumeShard(id: $id) { ${SHARD_FIELDS} } }`;

export const OVERVIEW = `
query Overview {
  overview {
    executionsByStatus { status count }
    deadLetterBacklog { capability errorCode pending oldestIngestedAt }
    stuck(first: 20) { executionId recipe version status reason waitingOn waitReasons idleSeconds }
    stuckAfterSeconds
  }
  capabilityBacklog { capability waiting oldestWaitingSince oldestWaitSeconds consumerLag }
}`;
export interface OverviewData {
  overview: {
    executionsByStatus: { status: ExecutionStatus; count: number }[];
    deadLetterBacklog: {
      capability: string | null;
      errorCode: string;
      pending: number;
      oldestIngestedAt: string | null;
    }[];
    stuck: {
      executionId: string;
      recipe: string;
      version: number;
      status: ExecutionStatus;
      reason: string;
      waitingOn: string[];
      waitReasons: string[];
      idleSeconds: number;
    }[];
    stuckAfterSeconds: number;
  };
  capabilityBacklog: {
    capability: string;
    waiting: number;
    oldestWaitingSince: string | null;
    oldestWaitSeconds: number | null;
    consumerLag: number | null;
  }[];
}
