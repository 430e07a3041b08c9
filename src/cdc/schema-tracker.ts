/**
 * Decides whether a Relation message becomes a schema event. pgoutput re-sends every relation
 * at the start of each session, so "first seen in this session" is not a change: the shape is
 * compared with the last schema event stored for that table, read back once per table and
 * session, and published only when it differs. Replays therefore add no schema events.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { RelationChange, Relation } from '../decoder/types.ts';
import { schemaSubject } from '../events/subject.ts';

export interface SchemaTracker {
  shouldPublish(change: RelationChange): Promise<boolean>;
}

/** The parts of a relation that make its shape; the same text for the same shape. */
export function shapeKey(r: Pick<Relation, 'schema' | 'name' | 'replicaIdentity' | 'columns'>): string {
  return JSON.stringify([r.schema, r.name, r.replicaIdentity, r.columns.map((c) => [c.name, c.typeOid, c.typeMod, c.isKey])]);
}

interface StoredRelation {
  schema: string;
  table: string;
  replica_identity: string;
  columns: Array<{ name: string; type_oid: number; type_mod: number; key: boolean }>;
}

function storedShapeKey(body: Uint8Array): string | undefined {
  try {
    const rel = (JSON.parse(new TextDecoder().decode(body)) as { relation?: StoredRelation }).relation;
    if (!rel) return undefined;
    return shapeKey({
      schema: rel.schema,
      name: rel.table,
      replicaIdentity: rel.replica_identity as Relation['replicaIdentity'],
      columns: rel.columns.map((c) => ({ name: c.name, typeOid: c.type_oid, typeMod: c.type_mod, isKey: c.key })),
    });
  } catch {
    return undefined;
  }
}

export function createSchemaTracker(jsm: JetStreamManager, stream: string, prefix: string, database: string): SchemaTracker {
  const published = new Map<number, string>();
  return {
    async shouldPublish(change) {
      const key = shapeKey(change.relation);
      let last = published.get(change.relation.oid);
      if (last === undefined) {
        const subject = schemaSubject(prefix, database, change.relation.schema, change.relation.name);
        try {
          const msg = await jsm.streams.getMessage(stream, { last_by_subj: subject });
          last = msg ? storedShapeKey(msg.data) : undefined;
        } catch (err) {
          // "no message found" means no schema event yet; anything else is a real failure.
          if (!/no message found|not found/i.test((err as Error).message)) throw err;
        }
      }
      published.set(change.relation.oid, key);
      return last !== key;
    },
  };
}
