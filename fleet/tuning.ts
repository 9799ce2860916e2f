/**
 * A host's tuning as stack config gives it (`kvmtune:hosts[i].tuning`, or `kvmtune:tuning` for
 * every host), checked with the very schemas the resources' providers check with, so a mistake is
 * reported at its config path before any resource is declared.
 */
import { z } from "zod";
import { blockElevatorSchema } from "../resources/providers/blockElevator";
import { hugepagePoolSchema } from "../resources/providers/hugepagePool";
import { kernelCmdlineSchema } from "../resources/providers/kernelCmdline";
import { numaPinnedGuestSchema } from "../resources/providers/numaPinnedGuest";
import { sriovNicSchema } from "../resources/providers/sriovNic";
import { vhostNetworkSchema } from "../resources/providers/vhostNetwork";
import { configPath, validate } from "../resources/validate";

/** Per kind of tuning: the provider's schema (which also wants the host's connection). */
export const TUNING_KINDS = {
    hugepagePools: hugepagePoolSchema,
    elevators: blockElevatorSchema,
    sriovNics: sriovNicSchema,
    vhostNetworks: vhostNetworkSchema,
    guests: numaPinnedGuestSchema,
} as const;

export type TuningKind = keyof typeof TUNING_KINDS;

/**
 * Raw items per kind; they go to KvmHost as written (defaults are the providers' to fill in). And
 * the host's one KernelCmdline (its arguments without connection), not a list: one owner per host.
 */
export type TuningLists = { [K in TuningKind]?: Array<Record<string, unknown>> };
export type Tuning = TuningLists & { kernelCmdline?: Record<string, unknown> };

const item = z.record(z.string(), z.unknown());
export const tuningSchema = z
    .object({
        ...(Object.fromEntries(Object.keys(TUNING_KINDS).map((k) => [k, z.array(item).optional()])) as Record<TuningKind, z.ZodOptional<z.ZodArray<typeof item>>>),
        kernelCmdline: item.optional(),
    })
    .strict();

/**
 * Problems of one host's tuning, each as `<path>.<kind>[j].<field>[k]: got ...; why`. The connection
 * is the host's own, so a schema that checks it sees a valid one and only the item is judged.
 */
export function tuningProblems(tuning: Tuning, connection: Record<string, unknown>, path: string): string[] {
    const problems: string[] = [];
    for (const kind of Object.keys(TUNING_KINDS) as TuningKind[]) {
        (tuning[kind] ?? []).forEach((raw, j) => {
            if ("connection" in raw) {
                problems.push(`${path}.${kind}[${j}].connection: the host's connection is used; remove it here`);
                return;
            }
            const r = validate(TUNING_KINDS[kind], { ...raw, connection });
            if (!r.ok) for (const f of r.failures) problems.push(`${configPath(f.path, `${path}.${kind}[${j}]`)}: ${f.detail}`);
        });
    }
    if (tuning.kernelCmdline) {
        if ("connection" in tuning.kernelCmdline) {
            problems.push(`${path}.kernelCmdline.connection: the host's connection is used; remove it here`);
        } else {
            const r = validate(kernelCmdlineSchema, { ...tuning.kernelCmdline, connection });
            if (!r.ok) for (const f of r.failures) problems.push(`${configPath(f.path, `${path}.kernelCmdline`)}: ${f.detail}`);
        }
    }
    return problems;
}
