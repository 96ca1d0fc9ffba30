/**
 * Remembers how recently finished exchanges ended, so a reply that arrives afterwards is counted for what it
 * is: `late` (after the deadline) or `duplicate` (a second answer). Bounded: oldest ids are forgotten first,
 * and a forgotten id's reply is counted as `unknown`.
 */
export type Outcome = "late" | "duplicate";

export class RecentOutcomes {
  private readonly entries = new Map<string, Outcome>();
  constructor(private readonly capacity = 10_000) {}

  remember(id: string, outcome: Outcome): void {
    this.entries.delete(id);
    this.entries.set(id, outcome);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  get(id: string): Outcome | undefined {
    return this.entries.get(id);
  }
}
