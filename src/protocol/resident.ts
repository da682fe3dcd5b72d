import { z } from 'zod';

/*
 * Residency of outputs: the output of a step run in another region than its execution's
 * stays in that region's payload store. The home region keeps only this claim check as
 * the step's output (expressions, events, the execution's output all see it), and a
 * later step of the same region gets it in its input and reads the value there.
 */

/** The claim check a resident output leaves in the home region. */
export const residentClaimCheckSchema = z.strictObject({
  $resident: z.strictObject({ ref: z.uuid(), region: z.string().min(1), bytes: z.number().int().nonnegative() }),
});
export type ResidentClaimCheck = z.infer<typeof residentClaimCheckSchema>;

export function residentClaimCheck(ref: string, region: string, bytes: number): ResidentClaimCheck {
  return { $resident: { ref, region, bytes } };
}

export function isResidentClaimCheck(value: unknown): value is ResidentClaimCheck {
  return (
    typeof value === 'object' &&
    value !== null &&
    '$resident' in value &&
    residentClaimCheckSchema.safeParse(value).success
  );
}

/** Error code of a step given a resident output of another region (terminal). */
export const RESIDENCY_VIOLATION = 'residency_violation';
