export * from '../../src/local/ports.ts';
