// The order saga of order-saga.yaml, written with the TypeScript builder: both give the same plan.
import { recipe } from '../../src/recipe/index.js';

export const orderSaga = recipe('order-saga')
  .describe('Reserve stock, charge the card, ship; compensate on failure, then notify the customer.')
  .deadline('10m')
  .task('reserve', 'inventory.reserve', {
    input: { sku: 'input.sku', quantity: 'input.quantity' },
    timeouts: { startToClose: '30s' },
    compensate: { capability: 'inventory.release', input: { reservationId: 'outputs.reserve.reservationId' } },
  })
  .task('charge', 'payments.charge', {
    input: '{ "orderId": input.orderId, "amount": input.quantity * outputs.reserve.unitPrice, "card": input.card }',
    retry: { maxAttempts: 4, initialInterval: '200ms', maxInterval: '2s', nonRetryableErrorCodes: ['card_declined'] },
    compensate: { capability: 'payments.refund', input: { chargeId: 'outputs.charge.chargeId' } },
  })
  .task('ship', 'shipping.ship', {
    input: { orderId: 'input.orderId', reservationId: 'outputs.reserve.reservationId' },
  })
  .onFailure((steps) =>
    steps.task('notifyCustomer', 'customers.notify', {
      input: {
        orderId: 'input.orderId',
        reason: 'failure.code',
        message: '"Your order " & input.orderId & " could not be completed: " & failure.message',
      },
    }),
  )
  .output('{ "orderId": input.orderId, "chargeId": outputs.charge.chargeId, "tracking": outputs.ship.trackingNumber }')
  .build();
