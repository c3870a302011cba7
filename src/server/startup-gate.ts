// Keeps RPCs out until start-up recovery has finished, as containerd's instrumented
// service does: a kubelet that asks too early gets UNAVAILABLE and retries, instead of
// reading half-recovered state.
export class StartupGate {
  #open = false;
  #phase = 'starting';

  get isOpen(): boolean {
    return this.#open;
  }

  /** What the daemon is doing while the gate is closed, for the UNAVAILABLE message. */
  get phase(): string {
    return this.#phase;
  }

  setPhase(phase: string): void {
    this.#phase = phase;
  }

  open(): void {
    this.#open = true;
    this.#phase = 'serving';
  }
}
