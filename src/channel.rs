//! Channels between the daemon's tasks, which all run on one thread (one
//! `LocalExecutor`): a queue behind a `RefCell` and the waker of the one task waiting
//! to receive.
//!
//! The interface is the part of `async-channel`'s (smol's `channel`) the daemon uses.
//! That crate's lock-free queues are generic over the item type and made for threads:
//! about 2.5 kB of code per item type on mipsel, seven types here, where the whole
//! binary must stay under 1,000,000 bytes. These are not `Send`: the compiler refuses
//! any attempt to pass one to another thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    queue: RefCell<VecDeque<T>>,
    /// `None`: unbounded.
    cap: Option<usize>,
    /// The task waiting in `recv`.
    waiting: RefCell<Option<Waker>>,
    senders: Cell<usize>,
    receivers: Cell<usize>,
    closed: Cell<bool>,
}

impl<T> Shared<T> {
    fn wake(&self) {
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }

    fn shut(&self) -> bool {
        self.closed.get() || self.senders.get() == 0
    }
}

/// The sending side; clones send into the same channel.
pub struct Sender<T>(Rc<Shared<T>>);

/// The receiving side. One task waits on a channel at a time (the daemon has one
/// reader per channel): a second waiting task would replace the first one's waker.
pub struct Receiver<T>(Rc<Shared<T>>);

/// The channel is closed, or its receivers are gone: the item comes back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why `try_send` did not queue the item (which comes back).
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    Full(T),
    Closed(T),
}

/// The channel is closed (or all senders are gone) and empty.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct RecvError;

/// Why `try_recv` returned nothing.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    Empty,
    Closed,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

fn channel<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Shared {
        queue: RefCell::new(VecDeque::new()),
        cap,
        waiting: RefCell::new(None),
        senders: Cell::new(1),
        receivers: Cell::new(1),
        closed: Cell::new(false),
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// A channel without a limit.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    channel(None)
}

/// A channel that holds at most `cap` items (at least one).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    channel(Some(cap.max(1)))
}

impl<T> Sender<T> {
    /// Queue `item` now, or say why not.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let s = &self.0;
        if s.closed.get() || s.receivers.get() == 0 {
            return Err(TrySendError::Closed(item));
        }
        let mut queue = s.queue.borrow_mut();
        if s.cap.is_some_and(|cap| queue.len() >= cap) {
            return Err(TrySendError::Full(item));
        }
        queue.push_back(item);
        drop(queue);
        s.wake();
        Ok(())
    }

    /// Queue `item`, waiting while a bounded channel is full.
    pub async fn send(&self, mut item: T) -> Result<(), SendError<T>> {
        loop {
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => {
                    // Only the receiver makes room, and it runs on this thread.
                    item = back;
                    smol::future::yield_now().await;
                }
            }
        }
    }

    /// No more items: the receiver gets those queued, then `RecvError`.
    pub fn close(&self) -> bool {
        let was = self.0.closed.replace(true);
        self.0.wake();
        !was
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.get() || self.0.receivers.get() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.set(self.0.senders.get() + 1);
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.senders.set(self.0.senders.get() - 1);
        if self.0.senders.get() == 0 {
            self.0.wake();
        }
    }
}

impl<T> Receiver<T> {
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.0.queue.borrow_mut().pop_front() {
            Some(v) => Ok(v),
            None if self.0.shut() => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next item, waiting for one; `RecvError` once the channel is closed (or all
    /// senders are gone) and empty.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv(self)
    }

    /// No more items: senders get `Closed`, this receiver what is queued.
    pub fn close(&self) -> bool {
        let was = self.0.closed.replace(true);
        !was
    }

    pub fn len(&self) -> usize {
        self.0.queue.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.0.receivers.set(self.0.receivers.get() + 1);
        Receiver(self.0.clone())
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.receivers.set(self.0.receivers.get() - 1);
    }
}

/// The future of `Receiver::recv`.
pub struct Recv<'a, T>(&'a Receiver<T>);

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.try_recv() {
            Ok(v) => Poll::Ready(Ok(v)),
            Err(TryRecvError::Closed) => Poll::Ready(Err(RecvError)),
            Err(TryRecvError::Empty) => {
                *self.0 .0.waiting.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future;

    #[test]
    fn items_arrive_in_order_then_the_end() {
        let (tx, rx) = unbounded();
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        future::block_on(tx2.send(2)).unwrap();
        assert_eq!(rx.len(), 2);
        assert_eq!(future::block_on(rx.recv()), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "one sender left");
        drop(tx2);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(future::block_on(rx.recv()), Err(RecvError));
    }

    #[test]
    fn bounded_refuses_when_full_and_closed_keeps_what_is_queued() {
        let (tx, rx) = bounded(2);
        tx.try_send('a').unwrap();
        tx.try_send('b').unwrap();
        assert_eq!(tx.try_send('c'), Err(TrySendError::Full('c')));
        assert!(tx.close());
        assert!(tx.is_closed());
        assert_eq!(tx.try_send('d'), Err(TrySendError::Closed('d')));
        assert_eq!(rx.try_recv(), Ok('a'));
        assert_eq!(future::block_on(rx.recv()), Ok('b'));
        assert_eq!(future::block_on(rx.recv()), Err(RecvError));
    }

    #[test]
    fn a_gone_receiver_closes_the_channel_for_senders() {
        let (tx, rx) = unbounded::<u8>();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(future::block_on(tx.send(1)), Err(SendError(1)));
    }

    #[test]
    fn a_waiting_receiver_wakes_on_send_and_on_the_last_sender_leaving() {
        let ex = smol::LocalExecutor::new();
        let (tx, rx) = unbounded::<u32>();
        let got = Rc::new(RefCell::new(Vec::new()));
        let seen = got.clone();
        let task = ex.spawn(async move {
            while let Ok(v) = rx.recv().await {
                seen.borrow_mut().push(v);
            }
            seen.borrow_mut().push(0);
        });
        future::block_on(ex.run(async {
            for v in 1..=3 {
                future::yield_now().await;
                tx.send(v).await.unwrap();
            }
            future::yield_now().await;
            drop(tx);
            task.await;
        }));
        assert_eq!(*got.borrow(), [1, 2, 3, 0]);
    }
}
