/**
 * Compiled read statements, cached per (role schema, document, operation, variable shape,
 * session shape): a repeated query only binds its parameter values again.
 *
 * An entry is made by compiling the statement twice: once with the request's values, once with
 * Slots in place of the values that may only become parameters (non-null, non-empty scalar
 * variables other than Boolean/enums, and non-empty session strings). The entry is kept only
 * when both give the same text and the same parameters at the same positions, and no Slot was
 * read as anything but an opaque parameter value (turned into a string or number, used as an
 * object or a key, stringified to JSON): any such use marks the compile tainted or throws, and
 * that shape is then compiled in full on every request. Everything else that decides the text
 * (null vs value, booleans, enums, limits, input objects and lists, absent variables) is part of
 * the key, by the value as sent.
 */
import { Kind, isScalarType, type GraphQLSchema, type TypeNode } from 'graphql/index.js';

const SLOT_KEY = '\u0000walnats-slot';

export interface Tracker {
  tainted: boolean;
}

/** A parameter value to be bound per request: a variable's or a session value. */
export class Slot {
  // An enumerable key no table, column or operator has: read as a filter, object or
  // order_by item, a Slot is refused by the compiler.
  [SLOT_KEY] = true;
  readonly #tracker: Tracker;
  readonly #from: 'var' | 'session';
  readonly #name: string;
  constructor(from: 'var' | 'session', name: string, tracker: Tracker) {
    this.#from = from;
    this.#name = name;
    this.#tracker = tracker;
  }
  get from(): 'var' | 'session' {
    return this.#from;
  }
  get name(): string {
    return this.#name;
  }
  [Symbol.toPrimitive](hint: string): string | number {
    this.#tracker.tainted = true;
    return hint === 'number' ? NaN : SLOT_KEY;
  }
  toJSON(): string {
    this.#tracker.tainted = true;
    return SLOT_KEY;
  }
}

/** A value that may stand as a Slot: its use can only be a parameter (truthy, not null). */
export function slotable(v: unknown): v is string | number {
  return (typeof v === 'string' && v !== '') || (typeof v === 'number' && v !== 0 && Number.isFinite(v));
}

/** A variable type whose non-null values may be Slots: a scalar other than Boolean (not a list, enum or input object). */
export function slotableType(schema: GraphQLSchema, t: TypeNode): boolean {
  const named = t.kind === Kind.NON_NULL_TYPE ? t.type : t;
  if (named.kind !== Kind.NAMED_TYPE || named.name.value === 'Boolean') return false;
  return isScalarType(schema.getType(named.name.value));
}

export function containsSlot(v: unknown): boolean {
  if (v instanceof Slot) return true;
  if (typeof v === 'string') return v.includes(SLOT_KEY);
  if (Array.isArray(v)) return v.some(containsSlot);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) return Object.values(v).some(containsSlot);
  return false;
}

export type Binding = { slot: 'var' | 'session'; name: string } | { value: unknown };

export interface CachedRead {
  /** undefined: the query is not answered from the JSON text (graphql-js executes it). */
  sql?: string;
  fields: number;
  bind: Binding[];
}
