// Named errors of the managed NATS server.

export const natsInstallHint =
  "install it with `apt-get install -y nats-server` (Debian/Ubuntu) or download it from https://nats.io/download/, " +
  "or set nats.url in the colony config to use a NATS server you run yourself";

/** The nats-server binary could not be found or run. */
export class NatsServerNotFoundError extends Error {
  readonly binary: string;
  constructor(binary: string, looked: readonly string[], options?: ErrorOptions) {
    super(`nats-server binary not found (looked for ${JSON.stringify(binary)} in ${looked.join(", ")}): ${natsInstallHint}`, options);
    this.name = "NatsServerNotFoundError";
    this.binary = binary;
  }
}

/** nats-server exited or did not become ready while starting. */
export class NatsServerStartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NatsServerStartError";
  }
}

/** A configuration reload did not take effect before its deadline. */
export class NatsReloadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NatsReloadError";
  }
}
