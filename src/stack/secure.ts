import { randomBytes } from 'node:crypto';

/*
 * Secure listeners for a stack: a Kafka broker with a SASL_SSL listener and the Java client
 * settings Kafka Connect (and Debezium's producer) need to reach it. The developer stack
 * stays plaintext; tests and anyone trying the secure settings locally pass these options.
 */

/** A SASL_SSL broker listener: PEM files, and the users it accepts. */
export interface KafkaSaslSslListener {
  /** PEM file holding the broker's private key (unencrypted PKCS#8) and its certificate chain. */
  readonly keystoreFile: string;
  /** PEM CA certificate the broker trusts (its own clients, and itself between listeners). */
  readonly caFile: string;
  /** SASL/PLAIN users: name to password. @default none */
  readonly plainUsers?: Readonly<Record<string, string>>;
  /** SCRAM-SHA-256 users, stored in the KRaft metadata when storage is formatted. @default none */
  readonly scramUsers?: Readonly<Record<string, string>>;
}

/** A JAAS value is quoted: quotes and backslashes in a password are escaped. */
function jaasQuote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** Java properties escape backslashes; a value stays on one line. */
function propertyValue(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

/**
 * The broker's listener properties. Its own connections between listeners (inter-broker)
 * authenticate with PLAIN as a user made up here, so only the SASL_SSL listener is open to
 * clients: there is no plaintext port besides the controller's.
 */
export function saslSslBrokerProperties(
  listener: KafkaSaslSslListener,
  port: number,
  controllerPort: number,
): string[] {
  const brokerPassword = randomBytes(18).toString('base64url');
  const plainUsers = { 'sous-broker': brokerPassword, ...listener.plainUsers };
  const userEntries = Object.entries(plainUsers)
    .map(([name, password]) => `user_${name}=${jaasQuote(password)}`)
    .join(' ');
  return [
    `listeners=SASL_SSL://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=SASL_SSL://127.0.0.1:${port}`,
    'inter.broker.listener.name=SASL_SSL',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256',
    'sasl.mechanism.inter.broker.protocol=PLAIN',
    propertyValue(
      `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="sous-broker" password=${jaasQuote(brokerPassword)} ${userEntries};`,
    ),
    'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${propertyValue(listener.keystoreFile)}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${propertyValue(listener.caFile)}`,
    'ssl.client.auth=none',
  ];
}

/** `kafka-storage format` arguments creating the listener's SCRAM users. */
export function scramFormatArguments(listener: KafkaSaslSslListener): string[] {
  return Object.entries(listener.scramUsers ?? {}).flatMap(([name, password]) => [
    '--add-scram',
    `SCRAM-SHA-256=[name=${name},password=${password}]`,
  ]);
}

/** How a Java Kafka client (Connect's worker, producer, consumer, admin) reaches a SASL_SSL listener. */
export interface JavaClientSecurity {
  /** PEM CA certificate of the brokers. */
  readonly caFile: string;
  readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
  readonly username: string;
  readonly password: string;
}

/**
 * Client properties for SASL_SSL, once bare (Connect's own clients) and once under each
 * prefix Connect hands to the clients of connectors (`producer.`, `consumer.`, `admin.`).
 */
export function javaClientProperties(security: JavaClientSecurity): string[] {
  const module =
    security.mechanism === 'PLAIN'
      ? 'org.apache.kafka.common.security.plain.PlainLoginModule'
      : 'org.apache.kafka.common.security.scram.ScramLoginModule';
  const settings = [
    'security.protocol=SASL_SSL',
    `sasl.mechanism=${security.mechanism}`,
    propertyValue(
      `sasl.jaas.config=${module} required username=${jaasQuote(security.username)} password=${jaasQuote(security.password)};`,
    ),
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${propertyValue(security.caFile)}`,
  ];
  return ['', 'producer.', 'consumer.', 'admin.'].flatMap((prefix) => settings.map((s) => `${prefix}${s}`));
}
