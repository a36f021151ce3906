# The clients' bootstrap address: a network load balancer on TCP 9092 in front of every
# ready broker. It carries the first connection only: Metadata then names each broker by the
# address it advertises, which clients must reach directly (docs/deploy.md). Targets are
# the broker pods' IPs, registered by the AWS Load Balancer Controller from a
# TargetGroupBinding; health is the admin port's /readyz, so a broker that has not caught
# up with the metadata gets no new clients.

resource "aws_lb" "this" {
  name               = var.name
  load_balancer_type = "network"
  internal           = var.internal
  subnets            = var.subnet_ids
  tags               = var.tags
}

resource "aws_lb_target_group" "kafka" {
  name        = "${var.name}-kafka"
  port        = 9092
  protocol    = "TCP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  health_check {
    protocol = "HTTP"
    port     = "9644"
    path     = "/readyz"
  }

  # Long-lived Kafka connections drain for as long as the broker's ordered shutdown.
  deregistration_delay = 30
  tags                 = var.tags
}

resource "aws_lb_listener" "kafka" {
  load_balancer_arn = aws_lb.this.arn
  port              = 9092
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.kafka.arn
  }
}
