-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "fee" BIGINT,
ADD COLUMN     "hold_amount" BIGINT,
ADD COLUMN     "node_share_bps" INTEGER,
ADD COLUMN     "price" BIGINT,
ADD COLUMN     "reward" BIGINT;
