/** Messages between the Train view's store and the training worker (src/training/worker.ts). */
export type TrainingRequest = { type: 'run'; runId: string } | { type: 'pause' };

export type TrainingEvent =
  | {
      type: 'ready';
      runId: string;
      backend: string;
      examples: number;
      truncated: number;
      unlabelled: number;
      totalSteps: number;
      startStep: number;
      notice?: string | null;
    }
  | { type: 'step'; runId: string; step: number; loss: number; lr: number; tokens: number; seconds: number; peakGpuBytes: number }
  | { type: 'checkpoint'; runId: string; step: number }
  | { type: 'paused'; runId: string; step: number }
  | { type: 'done'; runId: string; step: number }
  | { type: 'stopped'; runId: string; step: number; message: string }
  | { type: 'error'; runId: string; message: string; removed: boolean };
