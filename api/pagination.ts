import { z } from 'zod';

/** The page size and where to continue; extend it with a resource's own filters (then `.strict()`). */
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  /** The `nextCursor` of the previous page: the id of its last row. */
  cursor: z.guid().optional(),
});
export type PageQuery = z.infer<typeof pageQuery>;

/**
 * Prisma `findMany` arguments for one page in creation order (id breaks ties). One extra row is
 * fetched to know whether another page follows.
 * @example const rows = await prisma.node.findMany({ where, ...pageArgs(query) });
 */
export function pageArgs({ limit, cursor }: PageQuery) {
  return {
    take: limit + 1,
    ...(cursor ? { cursor: { id: cursor }, skip: 1 } : {}),
    orderBy: [{ createdAt: 'asc' as const }, { id: 'asc' as const }],
  };
}

/** Split the rows fetched with {@link pageArgs} into the page and the cursor of the next one. */
export function pageOf<T extends { id: string }>(
  rows: T[],
  { limit }: PageQuery,
): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}
