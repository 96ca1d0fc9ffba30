/**
 * Remembers how recently finished exchanges ended, so a reply that arrives afterwards is counted for what it
 * is: `late` (after the deadline) or `duplicate` (a second answer). Bounded: oldest ids are forgotten first,
 * and a forgotten id's reply is counted as `unknown`.
 *
 * Two generations of half the capacity each: ids go into the current one, and once it is full it becomes
 * the previous one and the old previous one is dropped whole. Between half the capacity and all of it is
 * remembered, the newest always. A single map trimmed by its oldest entry cost a delete and an insert per
 * exchange, and V8 rebuilt the map's table as the deletions piled up: one per request, on the hot path.
 */
export type Outcome = "late" | "duplicate";

export class RecentOutcomes {
  private current = new Map<string, Outcome>();
  private previous = new Map<string, Outcome>();
  private readonly generation: number;

  constructor(capacity = 10_000) {
    this.generation = Math.max(1, Math.floor(capacity / 2));
  }

  remember(id: string, outcome: Outcome): void {
    this.current.set(id, outcome);
    if (this.current.size < this.generation) return;
    this.previous = this.current;
    this.current = new Map();
  }

  get(id: string): Outcome | undefined {
    return this.current.get(id) ?? this.previous.get(id);
  }
}
