import type { Model, Prisma } from '../../generated/prisma/client.js';

/**
 * The catalog model `name`@`version` if it exists and is active, else null (inactive models take no
 * new tasks).
 * @example const model = await findActiveModel(prisma, 'llama', '3.1-8b'); if (!model) throw …;
 */
export async function findActiveModel(
  prisma: Prisma.TransactionClient,
  name: string,
  version: string,
): Promise<Model | null> {
  const model = await prisma.model.findUnique({ where: { name_version: { name, version } } });
  return model?.active ? model : null;
}

/** A model as the API shows it: prices (BigInt in the database) as decimal strings. */
export function modelView(m: Model) {
  return {
    id: m.id,
    name: m.name,
    version: m.version,
    taskType: m.taskType,
    maxInputBytes: m.maxInputBytes,
    maxOutputTokens: m.maxOutputTokens,
    pricePerRequest: m.pricePerRequest.toString(),
    pricePerInputToken: m.pricePerInputToken.toString(),
    pricePerOutputToken: m.pricePerOutputToken.toString(),
    active: m.active,
    createdAt: m.createdAt,
  };
}
export type ModelView = ReturnType<typeof modelView>;
