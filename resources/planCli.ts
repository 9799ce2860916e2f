#!/usr/bin/env node
/**
 * kvmtune-plan: prints the operator's plan (resources/plan.ts) of a `pulumi preview --json`
 * document, read from a file or standard input:
 *
 *   pulumi preview --json --stack rack1 | npx kvmtune-plan --stack rack1
 *
 * Exits 1 when the input is not a preview document, 2 when the preview reported errors (the plan is
 * then not what `up` would do), else 0.
 */
import * as fs from "node:fs";
import { planFromPreview, PreviewDigest, renderPlan } from "./plan";

function main(argv: string[]): number {
    let stackName: string | undefined;
    let file: string | undefined;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === "--stack" || argv[i] === "-s") stackName = argv[++i];
        else if (argv[i].startsWith("--stack=")) stackName = argv[i].slice("--stack=".length);
        else file = argv[i];
    }
    const text = fs.readFileSync(file ?? 0, "utf8");
    let digest: PreviewDigest;
    try {
        digest = JSON.parse(text) as PreviewDigest;
    } catch (e) {
        process.stderr.write(
            `kvmtune-plan: ${file ?? "standard input"} is not JSON (${(e as Error).message}); ` +
                "give it the output of `pulumi preview --json`\n",
        );
        return 1;
    }
    if (typeof digest !== "object" || digest === null || (!Array.isArray(digest.steps) && !Array.isArray(digest.diagnostics))) {
        process.stderr.write("kvmtune-plan: expected the output of `pulumi preview --json` (an object with steps)\n");
        return 1;
    }
    const plan = planFromPreview(digest);
    process.stdout.write(renderPlan(plan, stackName));
    return plan.errors.length > 0 ? 2 : 0;
}

process.exitCode = main(process.argv.slice(2));
