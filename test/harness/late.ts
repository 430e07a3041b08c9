/**
 * A stand-in for a value a beforeAll hook sets: every property access reads `get()` (methods
 * bound to it), so that a `use…()` helper can hand out names the tests use as they are.
 */
export function late<T extends object>(get: () => T): T {
  return new Proxy({} as T, {
    get(_, key) {
      const target = get();
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
