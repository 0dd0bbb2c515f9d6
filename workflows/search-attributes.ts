import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Search attributes that make every task findable in the Temporal UI. */
export const TaskStatusKey = defineSearchAttributeKey('TaskStatus', SearchAttributeType.KEYWORD);
export const TaskModelKey = defineSearchAttributeKey('TaskModel', SearchAttributeType.KEYWORD);
export const TaskNodeKey = defineSearchAttributeKey('TaskNode', SearchAttributeType.KEYWORD);
export const TaskClientKey = defineSearchAttributeKey('TaskClient', SearchAttributeType.KEYWORD);
/** `captured` or `released`: how the task's token hold was settled. */
export const TaskSettlementKey = defineSearchAttributeKey('TaskSettlement', SearchAttributeType.KEYWORD);

/** Every key the namespace must have registered, for the dev server flags and for real clusters. */
export const SEARCH_ATTRIBUTE_KEYS = [
  TaskStatusKey,
  TaskModelKey,
  TaskNodeKey,
  TaskClientKey,
  TaskSettlementKey,
] as const;
