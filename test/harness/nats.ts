export * from '../../src/local/nats.ts';
