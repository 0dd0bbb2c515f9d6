/** One payout: a withdrawal's amount (minor units, decimal string) sent to its destination. */
export interface PayoutRequest {
  withdrawalId: string;
  /** The same for every try of one withdrawal, so the provider pays it at most once. */
  idempotencyKey: string;
  nodeId: string;
  amount: string;
  destination: string;
}

/**
 * Pays withdrawals out of the system. Throws a non-retryable `PayoutRejected` ApplicationFailure when
 * the payout can never succeed (the withdrawal is then reversed); any other error is retried with the
 * same idempotency key.
 */
export interface PayoutAdapter {
  pay(request: PayoutRequest): Promise<{ reference: string }>;
}
