import { describe, expect, it } from 'vitest';
import { localGraphiql } from '../../src/gateway/graphiql.ts';
import { inWrittenOrder } from '../../src/gateway/sql.ts';

describe('local GraphiQL page', () => {
  const g = localGraphiql('/graphql');

  it('is found (the @graphql-yoga/graphiql package is installed) and refers only to local assets', () => {
    expect(g, '@graphql-yoga/graphiql must be installed for GraphiQL to work offline').not.toBeNull();
    expect(g!.base).toBe(`/graphql/graphiql/${g!.version}/`);
    const html = g!.render({ title: 'walnats', subscriptionsProtocol: 'WS' });
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toContain(`<script src="${g!.base}yoga-graphiql.umd.js"></script>`);
    expect(html).toContain('"subscriptionsProtocol":"WS"');
  });

  it('no option can close the script element or inject markup', () => {
    const html = g!.render({ title: '<b>x</b>', defaultQuery: '</script><script>alert(1)</script>' });
    expect(html).not.toContain('</script><script>alert(1)');
    expect(html).toContain('\\u003c/script>\\u003cscript>alert(1)\\u003c/script>');
    expect(html).toContain('<title>&lt;b&gt;x&lt;/b&gt;</title>');
  });
});

describe('order_by in the written order', () => {
  it('reorders the keys of coerced objects like the written value, lists and nesting included', () => {
    const coerced = [{ customer_id: 'asc', qty: 'desc' }, { customer: { id: 'asc', name: 'desc' } }];
    const written = [{ qty: 'desc', customer_id: 'asc' }, { customer: { name: 'desc', id: 'asc' } }];
    const out = inWrittenOrder(coerced, written) as Array<Record<string, unknown>>;
    expect(Object.keys(out[0])).toEqual(['qty', 'customer_id']);
    expect(Object.keys(out[1].customer as object)).toEqual(['name', 'id']);
    // a single object coerced into a list of one
    expect(Object.keys((inWrittenOrder([{ a: 1, b: 2 }], { b: 2, a: 1 }) as object[])[0])).toEqual(['b', 'a']);
    // nothing written (e.g. a default): unchanged
    expect(inWrittenOrder([{ a: 1, b: 2 }], undefined)).toEqual([{ a: 1, b: 2 }]);
  });
});
