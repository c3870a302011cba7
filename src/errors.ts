// berth's one catalogue of domain errors. Every module throws these; the CRI wrapper
// (server/rpc-wrapper.ts) is the single place that turns them into gRPC status codes.
// Each code is stable and each message should tell the user what to do next.

export type ErrorCode =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'PermissionDenied'
  | 'Unauthenticated'
  | 'ResourceExhausted'
  | 'OutOfRange'
  | 'DeadlineExceeded'
  | 'Cancelled'
  | 'Aborted'
  | 'Unavailable'
  | 'Unimplemented'
  | 'DataLoss'
  | 'Internal'
  /** A failure the runtime below reported as its own, passed on as containerd passes it (gRPC UNKNOWN). */
  | 'Unknown';

export class BerthError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BerthError';
    this.code = code;
  }
}

export const invalidArgument = (message: string) => new BerthError('InvalidArgument', message);
export const notFound = (what: string, id: string) => new BerthError('NotFound', `${what} "${id}" not found`);
export const alreadyExists = (message: string) => new BerthError('AlreadyExists', message);
export const failedPrecondition = (message: string) => new BerthError('FailedPrecondition', message);
export const outOfRange = (message: string) => new BerthError('OutOfRange', message);
export const resourceExhausted = (message: string) => new BerthError('ResourceExhausted', message);
export const aborted = (message: string) => new BerthError('Aborted', message);
export const unavailable = (message: string) => new BerthError('Unavailable', message);
export const deadlineExceeded = (message: string) => new BerthError('DeadlineExceeded', message);
export const unimplemented = (what: string) =>
  new BerthError('Unimplemented', `${what} is not implemented by berth yet`);
export const unknownFailure = (message: string) => new BerthError('Unknown', message);
export const internal = (message: string, cause?: unknown) => new BerthError('Internal', message, { cause });

/** Any thrown value as a BerthError: unknown errors become Internal with their message kept. */
export function asBerthError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError('Internal', message, { cause: err });
}
