import { Option } from 'commander';

/** `--json`: machine-readable output instead of a table, on every command that prints one. */
export function jsonOption(): Option {
  return new Option('--json', 'print JSON instead of a table');
}
