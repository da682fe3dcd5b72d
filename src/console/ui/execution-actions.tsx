import { useState, type ReactNode } from 'react';
import { useClient } from 'urql';
import { describeError } from './api.js';
import { Confirm, Notice, parseJson } from './common.js';
import { ACTIONS } from './queries.js';

/*
 * The operator actions of one execution. Each goes through a confirmation that says
 * what will happen in this execution's terms; the outcome (or the API's refusal, with its
 * code) is announced in a status line. Fields an action needs (a reason, an output, a
 * signal's payload) are typed in the dialog itself.
 */

export interface ActionRequest {
  readonly title: string;
  readonly explain: ReactNode;
  readonly confirmLabel: string;
  readonly danger?: boolean;
  readonly mutation: string;
  readonly variables: Record<string, unknown>;
  /** Extra input typed in the dialog, added to the variables under `field`. */
  readonly input?: { readonly label: string; readonly field: string; readonly json: boolean; readonly initial: string };
  /** A second text field (a signal's name). */
  readonly name?: { readonly label: string; readonly field: string };
  readonly done: string;
}

export function useActions(onDone: () => void) {
  const client = useClient();
  const [request, setRequest] = useState<ActionRequest | undefined>();
  const [outcome, setOutcome] = useState<{ tone: 'ok' | 'error'; text: string } | undefined>();
  const [text, setText] = useState('');
  const [name, setName] = useState('');
  const open = (r: ActionRequest) => {
    setText(r.input?.initial ?? '');
    setName('');
    setOutcome(undefined);
    setRequest(r);
  };
  const run = async (r: ActionRequest) => {
    const variables = { ...r.variables };
    if (r.input !== undefined) {
      if (r.input.json) {
        const parsed = parseJson(text);
        if (!parsed.ok) {
          setOutcome({ tone: 'error', text: `${r.input.label} is not JSON: ${parsed.error}` });
          return;
        }
        variables[r.input.field] = parsed.value;
      } else if (text.trim() !== '') variables[r.input.field] = text.trim();
    }
    if (r.name !== undefined) variables[r.name.field] = name.trim();
    setRequest(undefined);
    const result = await client.mutation(r.mutation, variables).toPromise();
    if (result.error !== undefined)
      setOutcome({ tone: 'error', text: `${r.title} refused: ${describeError(result.error)}` });
    else setOutcome({ tone: 'ok', text: r.done });
    onDone();
  };
  const dialog =
    request === undefined ? null : (
      <Confirm
        title={request.title}
        confirmLabel={request.confirmLabel}
        danger={request.danger ?? false}
        onCancel={() => setRequest(undefined)}
        onConfirm={() => void run(request)}
      >
        <p>{request.explain}</p>
        {request.name === undefined ? null : (
          <label>
            {request.name.label}
            <input name="dialog-name" value={name} onChange={(e) => setName(e.target.value)} required />
          </label>
        )}
        {request.input === undefined ? null : (
          <label>
            {request.input.label}
            <textarea
              name="dialog-input"
              rows={request.input.json ? 6 : 2}
              value={text}
              onChange={(e) => setText(e.target.value)}
              className={request.input.json ? 'mono' : undefined}
            />
          </label>
        )}
      </Confirm>
    );
  const notice = outcome === undefined ? null : <Notice tone={outcome.tone}>{outcome.text}</Notice>;
  return { open, dialog, notice };
}

/** The execution-wide actions, for its status. */
export function executionActions(id: string, status: string): ActionRequest[] {
  const out: ActionRequest[] = [];
  const finished = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(status);
  if (status === 'RUNNING') {
    out.push({
      title: 'Pause',
      explain: 'Nothing new is dispatched for this execution until it is resumed; steps in flight finish.',
      confirmLabel: 'Pause execution',
      mutation: ACTIONS.pause,
      variables: { id },
      done: 'Paused: nothing new is dispatched.',
    });
  }
  if (status === 'PAUSED') {
    out.push({
      title: 'Resume',
      explain: 'The execution dispatches its next steps again.',
      confirmLabel: 'Resume execution',
      mutation: ACTIONS.resume,
      variables: { id },
      done: 'Resumed.',
    });
  }
  if (!finished) {
    out.push({
      title: 'Signal',
      explain:
        'Delivers a named signal to this execution: a waitForSignal step with that name takes it now, or when it begins.',
      confirmLabel: 'Send signal',
      mutation: ACTIONS.signal,
      variables: { id },
      name: { label: 'Signal name', field: 'name' },
      input: { label: 'Payload (JSON)', field: 'payload', json: true, initial: '{}' },
      done: 'Signal delivered.',
    });
    out.push({
      title: 'Cancel',
      explain:
        'The execution stops for good: nothing more is dispatched, late replies are ignored, and its running sub-recipe executions are cancelled too. This cannot be undone.',
      confirmLabel: 'Cancel execution',
      danger: true,
      mutation: ACTIONS.cancel,
      variables: { id },
      input: { label: 'Reason (optional)', field: 'reason', json: false, initial: '' },
      done: 'Cancelled.',
    });
  }
  return out;
}

/**
 * The actions on one step of the execution. A finished execution cannot retry or skip
 * (the engine refuses): its retry is a rerun from the top-level step that holds it,
 * and the dialog says so.
 */
export function stepActions(
  id: string,
  status: string,
  step: { key: string; stepId: string; status: string; kind: string },
  topLevel: string | undefined,
): ActionRequest[] {
  const finished = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(status);
  const out: ActionRequest[] = [];
  if (finished && topLevel !== undefined && status !== 'COMPLETED') {
    out.push({
      title: `Retry ${step.key}`,
      explain: `This execution is ${status.toLowerCase()}, so the step cannot be retried in place: it runs again from step "${topLevel}"${topLevel === step.stepId ? '' : ' (the step that holds it, or an earlier one whose work was compensated)'}. That step and every step after it are forgotten and run again; the execution is running again.`,
      confirmLabel: 'Retry (rerun from here)',
      mutation: ACTIONS.rerun,
      variables: { id, stepId: topLevel },
      done: `Running again from ${topLevel}.`,
    });
  }
  if (!finished && step.kind === 'task' && !['completed', 'skipped'].includes(step.status)) {
    out.push({
      title: `Retry ${step.key}`,
      explain: `A new attempt of ${step.key} is dispatched now (its current attempt, dead-lettered, waiting to retry or in flight, is abandoned).`,
      confirmLabel: 'Retry step',
      mutation: ACTIONS.retry,
      variables: { id, key: step.key },
      done: `A new attempt of ${step.key} was dispatched.`,
    });
  }
  if (!finished && !['completed', 'skipped'].includes(step.status)) {
    out.push({
      title: `Skip ${step.key}`,
      explain: `${step.key} counts as completed with the output below; later steps see that output. Its attempt in flight, if any, is ignored.`,
      confirmLabel: 'Skip step',
      danger: true,
      mutation: ACTIONS.skip,
      variables: { id, key: step.key },
      input: { label: 'Output (JSON)', field: 'output', json: true, initial: 'null' },
      done: `${step.key} was skipped.`,
    });
  }
  // A failed run's retry above is this already.
  if (topLevel !== undefined && (!finished || status === 'COMPLETED')) {
    out.push({
      title: `Rerun from ${topLevel}`,
      explain: `Step "${topLevel}" and every step after it are forgotten and run again, with the outputs of the steps before it as they are.`,
      confirmLabel: 'Rerun from here',
      danger: true,
      mutation: ACTIONS.rerun,
      variables: { id, stepId: topLevel },
      done: `Running again from ${topLevel}.`,
    });
  }
  return out;
}
