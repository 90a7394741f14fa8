import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { wrapMethod } from '../src/media.js';

describe('wrapMethod', () => {
  it('wraps a prototype method on the instance and restores the prototype one', () => {
    class Player {
      calls = 0;
      play(): string {
        this.calls += 1;
        return 'played';
      }
    }
    const player = new Player();
    const seen: string[] = [];
    const restore = wrapMethod(player, 'play', (play) =>
      function (this: unknown, ...args: unknown[]) {
        seen.push('intent');
        return play.apply(this, args);
      },
    );
    assert.equal(player.play(), 'played');
    assert.deepEqual(seen, ['intent']);
    assert.equal(player.calls, 1, 'the original ran with the instance as this');
    restore();
    assert.ok(!Object.prototype.hasOwnProperty.call(player, 'play'));
    player.play();
    assert.deepEqual(seen, ['intent']);
  });

  it('puts an own method back, and leaves objects without the method alone', () => {
    const own = () => 'own';
    const target: Record<string, unknown> = { load: own };
    const restore = wrapMethod(target, 'load', () => () => 'wrapped');
    assert.equal((target.load as () => string)(), 'wrapped');
    restore();
    assert.equal(target.load, own);
    const empty: Record<string, unknown> = {};
    wrapMethod(empty, 'load', () => () => 'wrapped')();
    assert.deepEqual(empty, {});
  });
});
