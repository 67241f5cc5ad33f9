import { Ajv, type ErrorObject } from 'ajv';

/**
 * A validator for one JSON Schema, compiled on first use: the violations of a document as
 * "path: message" lines (empty when it is valid). Results written to disk (bench, demo) use it.
 */
export function schemaChecker(schema: object): (doc: unknown) => string[] {
  let compiled: ReturnType<Ajv['compile']> | undefined;
  return (doc) => {
    compiled ??= new Ajv({ allErrors: true, strict: false }).compile(schema);
    if (compiled(doc)) return [];
    return (compiled.errors ?? []).map(
      (e: ErrorObject) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`,
    );
  };
}
