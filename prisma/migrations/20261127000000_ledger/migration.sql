-- CreateEnum
CREATE TYPE "ledger_account_kind" AS ENUM ('client', 'client_hold', 'node', 'node_pending', 'platform_fees', 'external_topups', 'external_payouts');

-- CreateEnum
CREATE TYPE "ledger_transaction_type" AS ENUM ('topup', 'hold', 'capture', 'release', 'withdrawal_reserve', 'withdrawal_complete', 'withdrawal_reverse', 'reversal');

-- CreateTable
CREATE TABLE "ledger_accounts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "kind" "ledger_account_kind" NOT NULL,
    "owner_id" UUID,
    "owner_key" TEXT NOT NULL,
    "balance" BIGINT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_accounts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ledger_transactions" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "idempotency_key" TEXT NOT NULL,
    "type" "ledger_transaction_type" NOT NULL,
    "reference" TEXT,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "reverses_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_transactions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ledger_postings" (
    "id" BIGSERIAL NOT NULL,
    "transaction_id" UUID NOT NULL,
    "account_id" UUID NOT NULL,
    "amount" BIGINT NOT NULL,
    "balance_after" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_postings_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ledger_accounts_kind_owner_key_key" ON "ledger_accounts"("kind", "owner_key");

-- CreateIndex
CREATE UNIQUE INDEX "ledger_transactions_idempotency_key_key" ON "ledger_transactions"("idempotency_key");

-- CreateIndex
CREATE UNIQUE INDEX "ledger_transactions_reverses_id_key" ON "ledger_transactions"("reverses_id");

-- CreateIndex
CREATE INDEX "ledger_transactions_reference_idx" ON "ledger_transactions"("reference");

-- CreateIndex
CREATE INDEX "ledger_postings_account_id_id_idx" ON "ledger_postings"("account_id", "id");

-- CreateIndex
CREATE INDEX "ledger_postings_transaction_id_idx" ON "ledger_postings"("transaction_id");

-- AddForeignKey
ALTER TABLE "ledger_transactions" ADD CONSTRAINT "ledger_transactions_reverses_id_fkey" FOREIGN KEY ("reverses_id") REFERENCES "ledger_transactions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ledger_postings" ADD CONSTRAINT "ledger_postings_transaction_id_fkey" FOREIGN KEY ("transaction_id") REFERENCES "ledger_transactions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ledger_postings" ADD CONSTRAINT "ledger_postings_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "ledger_accounts"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Below: ledger invariants that Prisma does not model (CHECK constraints, triggers), so `prisma migrate
-- diff` neither creates nor reports them. They back up what lib/ledger/ledger.ts already enforces.

-- AddCheckConstraint: owner_key is derived from owner_id ('-' for system accounts); owner kinds have an owner.
ALTER TABLE "ledger_accounts" ADD CONSTRAINT "ledger_accounts_owner_key_check" CHECK ("owner_key" = COALESCE("owner_id"::text, '-'));
ALTER TABLE "ledger_accounts" ADD CONSTRAINT "ledger_accounts_owner_check" CHECK (("owner_id" IS NOT NULL) = ("kind" IN ('client', 'client_hold', 'node', 'node_pending')));

-- AddCheckConstraint: only the external accounts may go below zero.
ALTER TABLE "ledger_accounts" ADD CONSTRAINT "ledger_accounts_balance_check" CHECK ("balance" >= 0 OR "kind" IN ('external_topups', 'external_payouts'));

-- AddCheckConstraint
ALTER TABLE "ledger_postings" ADD CONSTRAINT "ledger_postings_amount_check" CHECK ("amount" <> 0);

-- CreateFunction: the ledger is append-only; a correction is a reversing transaction.
CREATE FUNCTION "ledger_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Default SQLSTATE P0001: drivers pass the message through instead of mapping it to a FK error.
    RAISE EXCEPTION 'ledger table % is append-only: % refused (post a reversing transaction instead)', TG_TABLE_NAME, TG_OP;
END;
$$;

-- CreateTrigger
CREATE TRIGGER "ledger_transactions_append_only" BEFORE UPDATE OR DELETE ON "ledger_transactions" FOR EACH ROW EXECUTE FUNCTION "ledger_append_only"();
CREATE TRIGGER "ledger_transactions_no_truncate" BEFORE TRUNCATE ON "ledger_transactions" FOR EACH STATEMENT EXECUTE FUNCTION "ledger_append_only"();
CREATE TRIGGER "ledger_postings_append_only" BEFORE UPDATE OR DELETE ON "ledger_postings" FOR EACH ROW EXECUTE FUNCTION "ledger_append_only"();
CREATE TRIGGER "ledger_postings_no_truncate" BEFORE TRUNCATE ON "ledger_postings" FOR EACH STATEMENT EXECUTE FUNCTION "ledger_append_only"();
