-- CreateEnum
CREATE TYPE "withdrawal_status" AS ENUM ('pending', 'completed', 'failed');

-- CreateTable
CREATE TABLE "withdrawals" (
    "id" UUID NOT NULL,
    "node_id" UUID NOT NULL,
    "idempotency_key" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "destination" TEXT NOT NULL,
    "status" "withdrawal_status" NOT NULL DEFAULT 'pending',
    "failure_reason" TEXT,
    "payout_reference" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completed_at" TIMESTAMPTZ(3),

    CONSTRAINT "withdrawals_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "withdrawals_node_id_idempotency_key_key" ON "withdrawals"("node_id", "idempotency_key");
