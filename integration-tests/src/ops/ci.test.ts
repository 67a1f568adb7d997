// `.ci/run` (what the GitLab test job runs) must run exactly the test command the README gives
// to users, so "the tests pass in CI" and "the README's command works" are one statement.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './dashboards.js';

const read = (file: string) => readFileSync(path.join(repoRoot, file), 'utf8');

/** The first line of the first ```sh block after the heading `## Tests`. */
function readmeTestCommand(): string {
  const readme = read('README.md');
  const section = readme.slice(readme.indexOf('\n## Tests'));
  const block = /```sh\n([^`]*?)\n```/.exec(section);
  expect(block, 'a ```sh block in the README section "## Tests"').not.toBeNull();
  return block![1].split('\n')[0].trim();
}

describe('.ci/run', () => {
  it("ends with the README's test command", () => {
    const commands = read('.ci/run')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0 && !line.startsWith('#'));
    expect(commands.at(-1)).toBe(readmeTestCommand());
  });
});
