// Test files make their fixtures in tests, hooks or lazy helpers, not while vitest collects the
// file: a throw at collection fails the whole file, a throw in a hook or test fails the tests
// that needed the fixture, each under its own name. Collection time is the module's top level,
// the bodies of describe callbacks, and the arguments of the test functions themselves (the rows
// of it.each, a skipIf condition, a test's name). This rule reports a call there to code it can
// name precisely as work: the project's own modules (a relative import) and the file system and
// process modules. A call through a helper of the file's own is not followed.
const SUITES = new Set(['describe', 'suite']);
const TESTS = new Set(['it', 'test', 'beforeAll', 'beforeEach', 'afterAll', 'afterEach']);
const IO_MODULES = new Set(['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'child_process', 'node:child_process']);
const FUNCTIONS = new Set(['ArrowFunctionExpression', 'FunctionExpression', 'FunctionDeclaration']);

/** The identifier a callee starts from: `a` in `a.b.c()`, `describe` in `describe.each(rows)(name, fn)`. */
function rootOf(node) {
  for (;;) {
    if (node.type === 'MemberExpression') node = node.object;
    else if (node.type === 'CallExpression') node = node.callee;
    else return node.type === 'Identifier' ? node : undefined;
  }
}

/** The calls inside a chain such as `describe.skipIf(cond).each(rows)`, whose arguments run at collection. */
function innerCalls(callee) {
  const calls = [];
  for (let node = callee; node.type === 'MemberExpression' || node.type === 'CallExpression';) {
    if (node.type === 'CallExpression') { calls.push(node); node = node.callee; } else node = node.object;
  }
  return calls;
}

const collectionTimeWork = {
  meta: {
    type: 'problem',
    docs: { description: 'Fixtures are made in tests, hooks or lazy helpers, not while a test file is collected.' },
    schema: [],
    messages: {
      work: "'{{name}}' (from '{{source}}') runs while the file is collected: call it in the test, a beforeAll/beforeEach, or a helper the test calls, so that a throw fails the tests that need it, not the whole file.",
    },
  },
  create(context) {
    const { sourceCode } = context;

    /** The module `identifier` was imported from, if it was. */
    function importSource(identifier) {
      for (let scope = sourceCode.getScope(identifier); scope; scope = scope.upper) {
        const variable = scope.set.get(identifier.name);
        if (!variable) continue;
        const def = variable.defs[0];
        return def?.type === 'ImportBinding' ? String(def.parent.source.value) : undefined;
      }
      return undefined;
    }

    function checkCall(node) {
      // The call itself, not one made on what it returned: `read().trim()` is reported once, at read().
      let root = node.callee;
      while (root.type === 'MemberExpression') root = root.object;
      if (root.type !== 'Identifier') return;
      const source = importSource(root);
      if (source !== undefined && (source.startsWith('.') || IO_MODULES.has(source))) {
        context.report({ node, messageId: 'work', data: { name: sourceCode.getText(node.callee), source } });
      }
    }

    /** Every call in an expression that runs now: not the bodies of the functions it defines. */
    function scan(node) {
      if (!node || typeof node.type !== 'string' || FUNCTIONS.has(node.type)) return;
      if (node.type === 'MethodDefinition' || (node.type === 'PropertyDefinition' && !node.static)) return;
      if (node.type === 'CallExpression' || node.type === 'NewExpression') checkCall(node);
      for (const key of sourceCode.visitorKeys[node.type] ?? []) {
        const child = node[key];
        if (Array.isArray(child)) child.forEach(scan); else scan(child);
      }
    }

    function visitCall(call) {
      const root = rootOf(call.callee);
      const name = root?.name;
      if (!SUITES.has(name) && !TESTS.has(name)) return scan(call);
      for (const inner of innerCalls(call.callee)) inner.arguments.forEach(scan);
      for (const arg of call.arguments) {
        if (!FUNCTIONS.has(arg.type)) scan(arg);
        else if (SUITES.has(name) && arg.body.type === 'BlockStatement') arg.body.body.forEach(visitStatement);
        else if (SUITES.has(name)) scan(arg.body);
      }
    }

    function visitStatement(node) {
      switch (node.type) {
        case 'ExpressionStatement':
          return node.expression.type === 'CallExpression' ? visitCall(node.expression) : scan(node.expression);
        case 'BlockStatement':
          return node.body.forEach(visitStatement);
        case 'ForOfStatement': case 'ForInStatement':
          scan(node.right);
          return visitStatement(node.body);
        case 'IfStatement':
          scan(node.test);
          visitStatement(node.consequent);
          return node.alternate && visitStatement(node.alternate);
        case 'ExportNamedDeclaration':
          return node.declaration && visitStatement(node.declaration);
        case 'ImportDeclaration': case 'FunctionDeclaration':
          return undefined;
        default:
          return scan(node);
      }
    }

    return { Program: (program) => program.body.forEach(visitStatement) };
  },
};

/** The rule, for the test files vitest collects. */
export function fixtures() {
  return {
    files: ['test/**/*.test.ts'],
    plugins: { tests: { rules: { 'collection-time-work': collectionTimeWork } } },
    rules: { 'tests/collection-time-work': 'error' },
  };
}
