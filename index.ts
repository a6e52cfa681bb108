// fastify-customer-data: IBM Watson-style customer-ID data labeling and deletion for Fastify 5.
import * as errors from './lib/errors.js'

export { customerData as default, customerData, type CustomerDataOptions } from './plugins/customer-data.js'
export { customerMetadata, type CustomerMetadataOptions } from './plugins/customer-metadata.js'
export { websocketMetadata, type WebsocketMetadataOptions } from './plugins/websocket-metadata.js'
export {
  customerLabels, RequestCustomerData,
  type CustomerLabelsOptions, type CustomerDataApi, type RouteCustomerDataConfig, type RouteCustomerDataRequest, type LabelOptions, type RequestInstanceResolver
} from './plugins/customer-labels.js'
export { userDataRoutes, type UserDataRoutesOptions } from './plugins/user-data-routes.js'
export { customerDataMetrics, type CustomerDataMetricsOptions } from './plugins/metrics.js'
export { customerDataConsole, type CustomerDataConsoleOptions } from './plugins/console.js'
export type * from './lib/deletion-events.js'
export type { DeletionOverview, DeletionOverviewPage, ListDeletionOverviewsOptions } from './lib/deletion-overview.js'
export { parseCustomerMetadata, parseMetadataQuery, validateCustomerId } from './lib/metadata.js'
export { apiKeyInstances, type ApiKeyInstancesOptions, type InstanceResolver, type InstanceRequest } from './lib/instances.js'
export { CustomerDataEngine, ENGINE_DEFAULTS, type Eraser, type EngineOptions } from './lib/engine.js'
export { Lease } from './lib/lease.js'
export { memoryStore, type MemoryStoreOptions } from './lib/stores/memory.js'
export { sqliteStore, type SqliteStoreOptions } from './lib/stores/sqlite.js'
export { postgresStore, POSTGRES_SESSION_OPTIONS, type PostgresStoreOptions, type PostgresPool, type PostgresPoolClient, type PostgresQueryResult } from './lib/stores/postgres.js'
export { runLabelStoreContract } from './lib/store-contract.js'
export type * from './lib/store.js'
export { errors }
