import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../util/errors.js';
import { renderHtml } from './html.js';
import { parseResult, schemaErrors, type BenchResult } from './result.js';

/** Writes DIR/result.json (checked against the schema first) and DIR/report.html. */
export async function writeOutputs(dir: string, res: BenchResult): Promise<{ json: string; html: string }> {
  const errs = schemaErrors(res);
  if (errs.length > 0)
    throw new WeftError(`internal error: the result breaks its own schema: ${errs.join('; ')}`);
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'result.json');
  await writeFile(json, JSON.stringify(res, null, 2) + '\n');
  return { json, html: await writeReport(dir, res) };
}

/** Writes DIR/report.html for a result (also one read back from a result.json: the report is derived). */
export async function writeReport(dir: string, res: BenchResult): Promise<string> {
  await mkdir(dir, { recursive: true });
  const html = join(dir, 'report.html');
  await writeFile(html, renderHtml(res));
  return html;
}

export async function readResult(path: string): Promise<BenchResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new WeftError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseResult(text, path);
}
