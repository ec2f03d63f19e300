/**
 * A terminal into a VM (xterm.js over the exec WebSocket). Each line typed at the prompt runs as
 * `sh -c <line>` in the VM: its stdout and stderr stream in as the command writes them, what is
 * typed while it runs is its stdin (Ctrl-D ends it), Ctrl-C cancels it on its worker, and its exit
 * code is printed when it ends. Up and down recall earlier lines.
 */
import '@xterm/xterm/css/xterm.css';
import type { Vm } from '@aetherium/sdk';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal as XTerm } from '@xterm/xterm';
import { useEffect, useRef } from 'react';

/** Stdin for a running command: lines pushed as they are typed, ended by Ctrl-D or the command's end. */
class StdinQueue implements AsyncIterable<string> {
  #items: string[] = [];
  #ended = false;
  #wake: (() => void) | null = null;
  push(text: string): void {
    this.#items.push(text);
    this.#wake?.();
  }
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      while (this.#items.length) yield this.#items.shift()!;
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }
}

const RED = '\x1b[31m';
const GREEN = '\x1b[32m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

export default function Terminal({ vm, onRan }: { vm: Vm; onRan?: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const onRanRef = useRef(onRan);
  onRanRef.current = onRan;

  useEffect(() => {
    const term = new XTerm({
      convertEol: true,
      cursorBlink: true,
      fontFamily: 'ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: 13,
      screenReaderMode: true,
      theme: { background: '#020617', foreground: '#e2e8f0' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current!);
    fit.fit();
    const onResize = () => fit.fit();
    window.addEventListener('resize', onResize);

    const prompt = `${vm.name}$ `;
    const history: string[] = [];
    let at = 0;
    let line = '';
    let running: { stdin: StdinQueue; abort: AbortController; input: string } | null = null;

    const showPrompt = () => term.write(`\r\n${GREEN}${prompt}${RESET}`);
    const replaceLine = (text: string) => {
      term.write(`\r\x1b[2K${GREEN}${prompt}${RESET}${text}`);
      line = text;
    };

    const run = async (command: string) => {
      const stdin = new StdinQueue();
      const abort = new AbortController();
      running = { stdin, abort, input: '' };
      term.write('\r\n');
      // The exit line starts a line of its own, whether or not the output ended one.
      let atLineStart = true;
      const out = (data: string) => {
        if (data) atLineStart = data.endsWith('\n');
        return data;
      };
      try {
        const result = await vm.exec('sh', {
          args: ['-c', command],
          stdin,
          signal: abort.signal,
          collectOutput: false,
          onStdout: (data) => term.write(out(data)),
          onStderr: (data) => term.write(`${RED}${out(data)}${RESET}`),
        });
        const code = result.exitCode;
        const tone = code === 0 ? DIM : RED;
        term.write(
          `${atLineStart ? '' : '\r\n'}${tone}[exit ${code ?? 'none'}${result.timedOut ? ', timed out' : ''} · ${result.durationMs} ms]${RESET}`,
        );
      } catch (err) {
        const e = err as { code?: string; message?: string };
        term.write(
          e.code === 'aborted'
            ? `\r\n${RED}[cancelled]${RESET}`
            : `\r\n${RED}[${e.code ?? 'error'}] ${e.message}${RESET}`,
        );
      } finally {
        stdin.end();
        running = null;
        onRanRef.current?.();
        showPrompt();
      }
    };

    const onData = term.onData((data) => {
      if (running) {
        const r = running;
        for (const ch of data) {
          if (ch === '\x03') {
            term.write('^C');
            r.abort.abort();
          } else if (ch === '\x04') {
            if (r.input) r.stdin.push(r.input);
            r.input = '';
            r.stdin.end();
          } else if (ch === '\r') {
            term.write('\r\n');
            r.stdin.push(`${r.input}\n`);
            r.input = '';
          } else if (ch === '\x7f') {
            if (r.input) {
              r.input = r.input.slice(0, -1);
              term.write('\b \b');
            }
          } else if (ch >= ' ') {
            r.input += ch;
            term.write(ch);
          }
        }
        return;
      }
      if (data === '\x1b[A' || data === '\x1b[B') {
        if (!history.length) return;
        at = Math.max(0, Math.min(history.length, at + (data === '\x1b[A' ? -1 : 1)));
        return replaceLine(history[at] ?? '');
      }
      for (const ch of data) {
        if (ch === '\r') {
          const command = line.trim();
          line = '';
          if (!command) return showPrompt();
          history.push(command);
          at = history.length;
          void run(command);
          return;
        }
        if (ch === '\x03') {
          term.write('^C');
          line = '';
          showPrompt();
        } else if (ch === '\x0c') {
          term.clear();
        } else if (ch === '\x7f') {
          if (line) {
            line = line.slice(0, -1);
            term.write('\b \b');
          }
        } else if (ch >= ' ') {
          line += ch;
          term.write(ch);
        }
      }
    });

    term.write(`${DIM}Each line runs as sh -c in ${vm.name}. Ctrl-C cancels, Ctrl-D ends its input.${RESET}`);
    showPrompt();
    term.focus();
    return () => {
      onData.dispose();
      window.removeEventListener('resize', onResize);
      running?.abort.abort();
      term.dispose();
    };
  }, [vm]);

  return <div ref={host} data-testid="terminal" className="h-80 overflow-hidden rounded bg-slate-950 p-1" />;
}
