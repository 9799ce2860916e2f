/**
 * The knob lifecycle every provider shares, so the copies cannot drift (one of them once ignored
 * the recorded original after an interrupted create):
 *
 * - create: claim the knob, recording what it has now; a claim this owner already holds is left
 *   from a create cut off half-way, and its recorded original (from before the first attempt) wins.
 *   Then apply. When applying fails, undo and release, so a failed create leaves nothing behind;
 *   when even that fails (the host is gone), the claim stays and keeps the original for the retry.
 * - update: take the claim again before anything changes: it moves the claim to a new label, and a
 *   claim the host lost (reinstalled, or removed by hand) is taken again, recording what the knob
 *   has now, with a warning (claims.ts reclaimForUpdate). Then apply with the original delete must
 *   put back: the one in state, unless the host lost it.
 * - delete: keep the claim while undoing, then release it. When another owner holds the knob now
 *   (our claim was removed by hand and the knob taken since), leave it alone (holdForDelete warns).
 *
 * A provider supplies only what is special: its claim, how to apply and how to undo.
 */
import { claimKnob, holdForDelete, KnobClaim, reclaimForUpdate, releaseKnob } from "./claims";
import type { Remote } from "./remote";

/** Claims the knob (recording `claim.original`), then applies with the original the claim records. */
export async function createKnob<O, R>(
    remote: Remote,
    claim: KnobClaim & { original: O },
    apply: (original: O) => Promise<R>,
    undo: (original: O) => Promise<void>,
): Promise<R> {
    const original = (await claimKnob(remote, claim)).original as O;
    try {
        return await apply(original);
    } catch (err) {
        await undo(original)
            .then(() => releaseKnob(remote, claim))
            .catch(() => undefined);
        throw err;
    }
}

/**
 * Takes the claim again (recording `claim.original` when the host had lost it), then applies with
 * the original delete must restore: `recorded` (from state), or what the knob has now when the
 * host lost the claim. A failed update keeps the claim: the resource still owns the knob.
 */
export async function updateKnob<O, R>(
    remote: Remote,
    claim: KnobClaim & { original: O },
    recorded: O | undefined,
    apply: (original: O) => Promise<R>,
): Promise<R> {
    return apply(await reclaimForUpdate(remote, claim, recorded));
}

/** Undoes the owner's settings and releases its claim; does nothing when the knob is another owner's now. */
export async function deleteKnob(remote: Remote, claim: KnobClaim, undo: () => Promise<void>): Promise<void> {
    if (await holdForDelete(remote, claim)) return;
    await undo();
    await releaseKnob(remote, claim);
}
