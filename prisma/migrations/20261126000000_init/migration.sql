-- CreateEnum
CREATE TYPE "client_status" AS ENUM ('active', 'suspended');

-- CreateEnum
CREATE TYPE "api_key_role" AS ENUM ('admin', 'client', 'node_owner', 'node');

-- CreateEnum
CREATE TYPE "node_status" AS ENUM ('registered', 'online', 'offline', 'disabled');

-- CreateEnum
CREATE TYPE "task_type" AS ENUM ('text_generation', 'embedding');

-- CreateEnum
CREATE TYPE "task_status" AS ENUM ('queued', 'assigned', 'running', 'verifying', 'completed', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "attempt_outcome" AS ENUM ('pending', 'accepted', 'completed', 'rejected', 'timeout', 'error', 'lost', 'cancelled', 'invalid');

-- CreateTable
CREATE TABLE "clients" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "status" "client_status" NOT NULL DEFAULT 'active',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "clients_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "role" "api_key_role" NOT NULL,
    "client_id" UUID,
    "node_owner_id" UUID,
    "node_id" UUID,
    "label" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "node_owners" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "node_owners_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "nodes" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "owner_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "credential_hash" TEXT NOT NULL,
    "capacity" INTEGER NOT NULL DEFAULT 1,
    "hardware" JSONB NOT NULL DEFAULT '{}',
    "status" "node_status" NOT NULL DEFAULT 'registered',
    "last_seen_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "nodes_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "node_models" (
    "node_id" UUID NOT NULL,
    "model_name" TEXT NOT NULL,
    "model_version" TEXT NOT NULL,

    CONSTRAINT "node_models_pkey" PRIMARY KEY ("node_id","model_name","model_version")
);

-- CreateTable
CREATE TABLE "models" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "task_type" "task_type" NOT NULL,
    "max_input_bytes" INTEGER NOT NULL,
    "max_output_tokens" INTEGER NOT NULL,
    "price_per_request" BIGINT NOT NULL DEFAULT 0,
    "price_per_input_token" BIGINT NOT NULL DEFAULT 0,
    "price_per_output_token" BIGINT NOT NULL DEFAULT 0,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "models_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tasks" (
    "id" TEXT NOT NULL,
    "client_id" UUID NOT NULL,
    "model_id" UUID NOT NULL,
    "idempotency_key" TEXT,
    "input" JSONB NOT NULL,
    "params" JSONB NOT NULL DEFAULT '{}',
    "priority" INTEGER NOT NULL DEFAULT 0,
    "status" "task_status" NOT NULL DEFAULT 'queued',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "node_id" UUID,
    "result" JSONB,
    "verdict" JSONB,
    "failure_reason" TEXT,
    "deadline_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "started_at" TIMESTAMPTZ(3),
    "completed_at" TIMESTAMPTZ(3),

    CONSTRAINT "tasks_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "task_attempts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "task_id" TEXT NOT NULL,
    "attempt_no" INTEGER NOT NULL,
    "node_id" UUID NOT NULL,
    "outcome" "attempt_outcome" NOT NULL DEFAULT 'pending',
    "error" TEXT,
    "assigned_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "accepted_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "latency_ms" INTEGER,

    CONSTRAINT "task_attempts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "node_metric_samples" (
    "id" BIGSERIAL NOT NULL,
    "node_id" UUID NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "load" DOUBLE PRECISION NOT NULL,
    "gpu_util" DOUBLE PRECISION,
    "mem_used_mb" INTEGER,
    "inflight" INTEGER NOT NULL DEFAULT 0,
    "payload" JSONB,

    CONSTRAINT "node_metric_samples_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_prefix_key" ON "api_keys"("prefix");

-- CreateIndex
CREATE UNIQUE INDEX "nodes_credential_hash_key" ON "nodes"("credential_hash");

-- CreateIndex
CREATE INDEX "nodes_owner_id_idx" ON "nodes"("owner_id");

-- CreateIndex
CREATE INDEX "node_models_model_name_model_version_idx" ON "node_models"("model_name", "model_version");

-- CreateIndex
CREATE UNIQUE INDEX "models_name_version_key" ON "models"("name", "version");

-- CreateIndex
CREATE INDEX "tasks_client_id_status_created_at_idx" ON "tasks"("client_id", "status", "created_at");

-- CreateIndex
CREATE INDEX "tasks_node_id_idx" ON "tasks"("node_id");

-- CreateIndex
CREATE UNIQUE INDEX "tasks_client_id_idempotency_key_key" ON "tasks"("client_id", "idempotency_key");

-- CreateIndex
CREATE INDEX "task_attempts_node_id_assigned_at_idx" ON "task_attempts"("node_id", "assigned_at");

-- CreateIndex
CREATE UNIQUE INDEX "task_attempts_task_id_attempt_no_key" ON "task_attempts"("task_id", "attempt_no");

-- CreateIndex
CREATE INDEX "node_metric_samples_node_id_at_idx" ON "node_metric_samples"("node_id", "at");

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_client_id_fkey" FOREIGN KEY ("client_id") REFERENCES "clients"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_node_owner_id_fkey" FOREIGN KEY ("node_owner_id") REFERENCES "node_owners"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "nodes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "nodes" ADD CONSTRAINT "nodes_owner_id_fkey" FOREIGN KEY ("owner_id") REFERENCES "node_owners"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "node_models" ADD CONSTRAINT "node_models_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "nodes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_client_id_fkey" FOREIGN KEY ("client_id") REFERENCES "clients"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "nodes"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "task_attempts" ADD CONSTRAINT "task_attempts_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "task_attempts" ADD CONSTRAINT "task_attempts_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "nodes"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "node_metric_samples" ADD CONSTRAINT "node_metric_samples_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "nodes"("id") ON DELETE CASCADE ON UPDATE CASCADE;
