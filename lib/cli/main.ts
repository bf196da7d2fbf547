#!/usr/bin/env node
// The kernelgrad command line: `kernelgrad train` and `kernelgrad eval`.
// Errors print one line on stderr: exit code 2 for bad options or inputs, 1 for failures while
// running (set KG_DEBUG=1 to see the stack trace).
import { Command, CommanderError } from 'commander';
import { evalCommand } from './eval';
import { UsageError } from './options';
import { trainCommand } from './train';

export function buildProgram(): Command {
  const program = new Command('kernelgrad')
    .description('kernelgrad: batch normalization from scratch, trained with hand-written C++/CUDA kernels')
    .version(readVersion(), '-V, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // commander writes "error: ...\n(Did you mean ...?)": keep it to one line.
      outputError: (str, write) => write(`kernelgrad: ${str.trim().replace(/\s*\n\s*/g, ' ')}\n`),
    });
  for (const cmd of [trainCommand(), evalCommand()]) {
    cmd.exitOverride().configureOutput({
      outputError: (str, write) => write(`kernelgrad ${cmd.name()}: ${str.trim().replace(/\s*\n\s*/g, ' ')}\n`),
    });
    program.addCommand(cmd);
  }
  return program;
}

function readVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../../package.json') as { version: string }).version;
  } catch {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return (require('../../../package.json') as { version: string }).version; // from dist/lib/cli
    } catch {
      return 'unknown';
    }
  }
}

/** Runs the CLI on `argv` (as process.argv) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return 2;
    }
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its one-line message otherwise.
      return e.exitCode === 0 ? 0 : 2;
    }
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`kernelgrad: error: ${message.split('\n')[0]}\n`);
    if (process.env.KG_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`kernelgrad: error: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
