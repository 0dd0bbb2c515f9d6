-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "workflow_seen_at" TIMESTAMPTZ(3);

-- CreateIndex
CREATE INDEX "tasks_status_created_at_idx" ON "tasks"("status", "created_at");
