import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface ErrorClassSource {
  file: string;
  name: string;
  parent: string;
  /** The string its `static override readonly errorName` holds, if it declares one. */
  errorName: string | undefined;
}

/** Every class declared in the .ts files under `folders`, with the class it extends. */
function classesIn(folders: string[]): ErrorClassSource[] {
  const found: ErrorClassSource[] = [];
  for (const folder of folders) {
    for (const entry of readdirSync(path.join(ROOT, folder), { recursive: true, encoding: 'utf8' })) {
      if (!entry.endsWith('.ts')) continue;
      const file = path.join(folder, entry);
      const source = ts.createSourceFile(file, readFileSync(path.join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest);
      const visit = (node: ts.Node): void => {
        const parent = ts.isClassLike(node) && node.name ? extendsName(node) : undefined;
        if (ts.isClassLike(node) && node.name && parent) found.push({ file, name: node.name.text, parent, errorName: declaredErrorName(node) });
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
  }
  return found;
}

function extendsName(node: ts.ClassLikeDeclaration): string | undefined {
  const clause = node.heritageClauses?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword);
  const expression = clause?.types[0]?.expression;
  return expression && ts.isIdentifier(expression) ? expression.text : undefined;
}

function declaredErrorName(node: ts.ClassLikeDeclaration): string | undefined {
  for (const member of node.members) {
    if (!ts.isPropertyDeclaration(member) || !ts.isIdentifier(member.name) || member.name.text !== 'errorName') continue;
    if (!member.modifiers?.some((m) => m.kind === ts.SyntaxKind.StaticKeyword)) continue;
    return member.initializer && ts.isStringLiteral(member.initializer) ? member.initializer.text : undefined;
  }
  return undefined;
}

/** AgentError and the classes that extend it, however indirectly. */
function agentErrorClasses(classes: ErrorClassSource[]): ErrorClassSource[] {
  const names = new Set(['AgentError']);
  for (let before = 0; names.size !== before;) {
    before = names.size;
    for (const c of classes) if (names.has(c.parent)) names.add(c.name);
  }
  return classes.filter((c) => names.has(c.name));
}

describe('the names of the agent\'s errors, which the bundle does not keep for it', () => {
  it('are declared by every class extending AgentError, each its own class name', () => {
    const classes = agentErrorClasses(classesIn(['agent', 'hardening', 'verifier']));
    // A scan that finds nothing proves nothing.
    expect(classes.map((c) => c.name)).toEqual(expect.arrayContaining(['DpsError', 'TpmUnavailableError', 'ProfileError', 'VerifierError']));
    for (const c of classes) expect(`${c.file}: ${c.name} names its errors ${c.errorName ?? '(nothing)'}`).toBe(`${c.file}: ${c.name} names its errors ${c.name}`);
  });
});
