/**
 * HostFacts' provider: reads, never writes. The id is the host's machine id, so moving a host to a
 * new address (a connection change) updates the resource in place rather than replacing it.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import { gatherFacts, HostFactsData } from "../host/facts";
import { remoteFor } from "../host/sshPool";
import { warnUser } from "../host/warn";
import { diffProps, FieldPolicy } from "../policy";
import { found, gone, stateOf } from "../state";
import { checkInputs, inputsFrom } from "../validate";

export const hostFactsSchema = z.object({ connection: connectionSchema }).strict();
type Inputs = z.output<typeof hostFactsSchema>;

/** Only the connection is an input, and a new address is the same host: never replace. */
const POLICY: FieldPolicy<Inputs> = { connection: "state" };

/**
 * The outputs: the inputs and the facts, once. The class derives `hostname`, `numaNodes`,
 * `blockDevices`, ... from `facts` in the program (resources/hostFacts.ts), so state does not hold
 * them a second time (about 5 KB per host with 5 disks; issue 17).
 */
function outputs(inputs: Inputs, facts: HostFactsData) {
    return stateOf({ ...inputs, facts });
}

function idOf(facts: HostFactsData): string {
    return facts.machineId ? `${facts.hostname}/${facts.machineId}` : facts.hostname;
}

async function readHost(inputs: Inputs) {
    const facts = await gatherFacts(remoteFor(inputs.connection));
    return { id: idOf(facts), outs: outputs(inputs, facts) };
}

/** Inputs of a resource: only what the user declared, not the facts stored beside it. */
function inputsOf(props: Record<string, unknown>): Inputs {
    return inputsFrom(hostFactsSchema, props, "HostFacts inputs");
}

export const provider = {
    async check(_olds: unknown, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return checkInputs(hostFactsSchema, news);
    },

    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        return diffProps(hostFactsSchema, POLICY, olds, news);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        // Validated here too: the engine skips check for some paths (imports), and an unchecked
        // host name would reach the network and the error messages as it is.
        return readHost(inputsOf(props));
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const { id: current, outs } = await readHost(inputsOf(props));
        // A new machine id behind a host key that still matches the pin: the same host, reinstalled
        // (a different machine would have presented another key, which the connection refuses).
        // The facts this resource holds describe the host before: gone, so refresh drops them and
        // the same `up` reads the host anew, rather than failing every refresh until someone
        // deletes the resource by hand.
        if (id && current !== id) {
            warnUser(`HostFacts ${id}: the host now has machine id ${current} under the same pinned host key (reinstalled?); its facts are read anew`);
            return gone();
        }
        return found(current, outs);
    },

    async update(_id: string, _olds: unknown, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        return { outs: (await readHost(inputsOf(news))).outs };
    },

    async delete(): Promise<void> {
        // Read-only: nothing on the host belongs to this resource.
    },
};
