-- DropIndex
DROP INDEX "nodes_credential_hash_key";

-- AlterTable
ALTER TABLE "nodes" DROP COLUMN "credential_hash";

-- AlterTable
ALTER TABLE "task_attempts" ADD COLUMN     "output" JSONB,
ADD COLUMN     "output_hash" TEXT,
ADD COLUMN     "usage" JSONB;

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "request_hash" TEXT;
