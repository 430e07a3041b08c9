/**
 * What this replication session knows about relations and types, keyed by OID.
 *
 * pgoutput sends a Relation message before the first change of a table in each session and
 * again whenever its shape changes; changes then refer to the table by OID only. Keying by
 * OID (not name) makes a rename a shape change of the same table rather than a new table.
 */
import type { Relation } from './types.ts';
import type { TypeMessage } from './messages.ts';

export interface RelationUpdate {
  relation: Relation;
  /** The shape known before this message, if any. */
  previous: Relation | undefined;
  /** First sighting, or a shape different from `previous`. */
  changed: boolean;
}

/** Same schema, name, replica identity and columns (names, types, typmods, key flags). */
export function sameShape(a: Relation, b: Relation): boolean {
  if (a.oid !== b.oid || a.schema !== b.schema || a.name !== b.name) return false;
  if (a.replicaIdentity !== b.replicaIdentity || a.columns.length !== b.columns.length) return false;
  for (let i = 0; i < a.columns.length; i++) {
    const x = a.columns[i];
    const y = b.columns[i];
    if (x.name !== y.name || x.typeOid !== y.typeOid || x.typeMod !== y.typeMod || x.isKey !== y.isKey) return false;
  }
  return true;
}

export class UnknownRelationError extends Error {
  readonly oid: number;
  constructor(oid: number) {
    super(`unknown relation OID ${oid}: no Relation message for it was received in this replication session`);
    this.name = 'UnknownRelationError';
    this.oid = oid;
  }
}

export class RelationCache {
  private readonly relations = new Map<number, Relation>();
  private readonly types = new Map<number, { schema: string; name: string }>();

  apply(rel: Relation): RelationUpdate {
    const previous = this.relations.get(rel.oid);
    this.relations.set(rel.oid, rel);
    return { relation: rel, previous, changed: previous === undefined || !sameShape(previous, rel) };
  }

  get(oid: number): Relation {
    const rel = this.relations.get(oid);
    if (rel === undefined) throw new UnknownRelationError(oid);
    return rel;
  }

  has(oid: number): boolean {
    return this.relations.has(oid);
  }

  /** Remembers a type sent in a Type message (pgoutput sends one for non-built-in types). */
  applyType(msg: Pick<TypeMessage, 'typeOid' | 'schema' | 'name'>): void {
    this.types.set(msg.typeOid, { schema: msg.schema, name: msg.name });
  }

  /** Name (without schema; see `type()`) of a type seen in a Type message, or undefined. */
  typeName(oid: number): string | undefined {
    return this.types.get(oid)?.name;
  }

  /** The Type message's parts for a type, or undefined. */
  type(oid: number): { schema: string; name: string } | undefined {
    return this.types.get(oid);
  }
}
