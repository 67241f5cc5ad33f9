import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The lab's record of everything it created, written *before* each object is made, so that
 * `weft lab down` removes it all even after an `up` that crashed halfway.
 */
export type JournalEntry =
  | { kind: 'netns'; name: string }
  | { kind: 'fixture'; dir: string }
  | { kind: 'process'; pid: number; what: string }
  | { kind: 'dir'; path: string };

export const LAB_ROOT = process.env.WEFT_LAB_ROOT ?? '/run/weft/labs';
export const labDir = (name: string): string => join(LAB_ROOT, name);

export class Journal {
  constructor(private readonly dir: string) {}

  async record(e: JournalEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await appendFile(join(this.dir, 'journal.jsonl'), JSON.stringify(e) + '\n');
  }

  static async read(dir: string): Promise<JournalEntry[]> {
    try {
      const text = await readFile(join(dir, 'journal.jsonl'), 'utf8');
      return text
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as JournalEntry];
          } catch {
            return []; // a line cut short by a crash
          }
        });
    } catch {
      return [];
    }
  }
}
